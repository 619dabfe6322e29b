use chrono::{DateTime, Utc};

use crate::{
    Alphabet, DomainError, GroupAddresses, Label, MaxTickets, NtpClass, ObjectId, ProgramId,
    RedemptionFailure, RedemptionLimit, TenantId, TicketLength, UrlPrefix, ValidityWindow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgramState {
    Active,
    /// Every ticket fails as if expired, until `endTime` is set again.
    Suspended,
}

impl ProgramState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramState::Active => "active",
            ProgramState::Suspended => "suspended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(ProgramState::Active),
            "suspended" => Some(ProgramState::Suspended),
            _ => None,
        }
    }
}

/// Everything a client chooses when creating a program, already validated field by
/// field; `Program::create` applies the rules that span fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProgram {
    pub name: Option<Label>,
    pub object_id: ObjectId,
    pub group_addresses: GroupAddresses,
    pub ntp_class: NtpClass,
    pub max_tickets: MaxTickets,
    pub max_redemptions: RedemptionLimit,
    pub window: ValidityWindow,
    pub ticket_length: TicketLength,
    pub alphabet: Alphabet,
    pub url_prefix: Option<UrlPrefix>,
    pub one_active_per_subject: bool,
}

/// A partial update: `None` leaves a field as it is; for the nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramChanges {
    pub max_tickets: Option<MaxTickets>,
    pub max_redemptions: Option<RedemptionLimit>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub url_prefix: Option<Option<UrlPrefix>>,
    pub name: Option<Option<Label>>,
}

impl ProgramChanges {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A program (Eluvio's NTP instance): the policy its tickets are issued and
/// redeemed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub id: ProgramId,
    pub tenant_id: TenantId,
    pub name: Option<Label>,
    pub object_id: ObjectId,
    pub group_addresses: GroupAddresses,
    pub ntp_class: NtpClass,
    pub max_tickets: MaxTickets,
    pub max_redemptions: RedemptionLimit,
    pub window: ValidityWindow,
    pub ticket_length: TicketLength,
    pub alphabet: Alphabet,
    pub url_prefix: Option<UrlPrefix>,
    pub one_active_per_subject: bool,
    pub state: ProgramState,
    pub issued_tickets: u32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn check_code_space(
    alphabet: Alphabet,
    length: TicketLength,
    max_tickets: MaxTickets,
) -> Result<(), DomainError> {
    if alphabet.fits(length, max_tickets) {
        Ok(())
    } else {
        Err(DomainError::new(
            "ticketLength",
            format!(
                "is too short for maxTickets: {} characters of the {} alphabet must allow at least 1000 codes per ticket",
                length.get(),
                alphabet.as_str()
            ),
        ))
    }
}

impl Program {
    pub fn create(
        id: ProgramId,
        tenant_id: TenantId,
        new: NewProgram,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        check_code_space(new.alphabet, new.ticket_length, new.max_tickets)?;
        Ok(Self {
            id,
            tenant_id,
            name: new.name,
            object_id: new.object_id,
            group_addresses: new.group_addresses,
            ntp_class: new.ntp_class,
            max_tickets: new.max_tickets,
            max_redemptions: new.max_redemptions,
            window: new.window,
            ticket_length: new.ticket_length,
            alphabet: new.alphabet,
            url_prefix: new.url_prefix,
            one_active_per_subject: new.one_active_per_subject,
            state: ProgramState::Active,
            issued_tickets: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// The program after `changes`, one version later. Setting `endTime` on a
    /// suspended program reactivates it, as Eluvio's `UpdateNTPInstance` does.
    pub fn apply(&self, changes: ProgramChanges, now: DateTime<Utc>) -> Result<Self, DomainError> {
        let window = ValidityWindow::new(
            changes.start_time.unwrap_or(self.window.start()),
            changes.end_time.unwrap_or(self.window.end()),
        )?;
        let max_tickets = changes.max_tickets.unwrap_or(self.max_tickets);
        check_code_space(self.alphabet, self.ticket_length, max_tickets)?;
        let state = if changes.end_time.is_some() {
            ProgramState::Active
        } else {
            self.state
        };
        Ok(Self {
            max_tickets,
            max_redemptions: changes.max_redemptions.unwrap_or(self.max_redemptions),
            window,
            url_prefix: changes
                .url_prefix
                .unwrap_or_else(|| self.url_prefix.clone()),
            name: changes.name.unwrap_or_else(|| self.name.clone()),
            state,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        })
    }

    pub fn suspended(&self, now: DateTime<Utc>) -> Self {
        Self {
            state: ProgramState::Suspended,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// Whether new tickets may be issued now: not suspended and not ended. A program
    /// that has not started yet may issue, so codes can go out before the event.
    pub fn is_issuing(&self, now: DateTime<Utc>) -> bool {
        self.state == ProgramState::Active && now < self.window.end()
    }

    /// Whether `count` more tickets stay within `maxTickets`.
    pub fn has_room_for(&self, count: u32) -> bool {
        self.max_tickets
            .limit()
            .is_none_or(|cap| u64::from(self.issued_tickets) + u64::from(count) <= u64::from(cap))
    }

    /// Why the program's tickets cannot be redeemed at `now`, if they cannot.
    pub fn check_redeemable(&self, now: DateTime<Utc>) -> Result<(), RedemptionFailure> {
        if self.state == ProgramState::Suspended {
            Err(RedemptionFailure::ProgramSuspended)
        } else if now < self.window.start() {
            Err(RedemptionFailure::ProgramNotStarted)
        } else if now >= self.window.end() {
            Err(RedemptionFailure::ProgramEnded)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    pub(crate) fn program(max_tickets: i64) -> Program {
        let new = NewProgram {
            name: None,
            object_id: ObjectId::try_from("iq__obj".to_owned()).unwrap(),
            group_addresses: GroupAddresses::default(),
            ntp_class: NtpClass::DEFAULT,
            max_tickets: MaxTickets::try_from(max_tickets).unwrap(),
            max_redemptions: RedemptionLimit::try_from(3).unwrap(),
            window: ValidityWindow::new(at(0), at(100)).unwrap(),
            ticket_length: TicketLength::DEFAULT,
            alphabet: Alphabet::Alphanumeric,
            url_prefix: None,
            one_active_per_subject: false,
        };
        Program::create(ProgramId::generate(), TenantId::generate(), new, at(-10)).unwrap()
    }

    #[test]
    fn creation_refuses_a_code_space_too_small_for_max_tickets() {
        let mut new_program = program(0);
        new_program.alphabet = Alphabet::Numeric;
        let new = NewProgram {
            name: None,
            object_id: new_program.object_id.clone(),
            group_addresses: GroupAddresses::default(),
            ntp_class: NtpClass::DEFAULT,
            max_tickets: MaxTickets::try_from(1001).unwrap(),
            max_redemptions: RedemptionLimit::DEFAULT,
            window: new_program.window,
            ticket_length: TicketLength::DEFAULT,
            alphabet: Alphabet::Numeric,
            url_prefix: None,
            one_active_per_subject: false,
        };
        let error = Program::create(ProgramId::generate(), TenantId::generate(), new, at(0))
            .expect_err("10^6 < 1000 × 1001");
        assert_eq!(error.field, "ticketLength");
    }

    #[test]
    fn redeemable_only_inside_the_window_and_while_active() {
        let program = program(0);
        assert_eq!(
            program.check_redeemable(at(-1)),
            Err(RedemptionFailure::ProgramNotStarted)
        );
        assert_eq!(program.check_redeemable(at(0)), Ok(()));
        assert_eq!(program.check_redeemable(at(99)), Ok(()));
        assert_eq!(
            program.check_redeemable(at(100)),
            Err(RedemptionFailure::ProgramEnded)
        );
        assert_eq!(
            program.suspended(at(1)).check_redeemable(at(50)),
            Err(RedemptionFailure::ProgramSuspended)
        );
    }

    #[test]
    fn setting_end_time_reactivates_a_suspended_program() {
        let suspended = program(0).suspended(at(1));
        let changes = ProgramChanges {
            end_time: Some(at(500)),
            ..ProgramChanges::default()
        };
        let reactivated = suspended.apply(changes, at(2)).expect("valid");
        assert_eq!(reactivated.state, ProgramState::Active);
        assert_eq!(reactivated.version, suspended.version + 1);
        assert_eq!(reactivated.window.end(), at(500));
    }

    #[test]
    fn other_changes_leave_a_suspended_program_suspended() {
        let suspended = program(0).suspended(at(1));
        let changes = ProgramChanges {
            max_redemptions: Some(RedemptionLimit::try_from(1).unwrap()),
            ..ProgramChanges::default()
        };
        let changed = suspended.apply(changes, at(2)).expect("valid");
        assert_eq!(changed.state, ProgramState::Suspended);
        assert_eq!(changed.max_redemptions.get(), 1);
    }

    #[test]
    fn a_patch_cannot_invert_the_window() {
        let changes = ProgramChanges {
            end_time: Some(at(-100)),
            ..ProgramChanges::default()
        };
        assert_eq!(
            program(0)
                .apply(changes, at(1))
                .expect_err("inverted")
                .field,
            "endTime"
        );
    }

    #[test]
    fn issuing_stops_when_suspended_or_ended_but_not_before_start() {
        let program = program(2);
        assert!(program.is_issuing(at(-5)));
        assert!(!program.is_issuing(at(100)));
        assert!(!program.suspended(at(0)).is_issuing(at(1)));
    }

    #[test]
    fn room_for_tickets_respects_the_cap() {
        let mut capped = program(2);
        assert!(capped.has_room_for(2));
        assert!(!capped.has_room_for(3));
        capped.issued_tickets = 2;
        assert!(!capped.has_room_for(1));
        let unlimited = program(0);
        assert!(unlimited.has_room_for(u32::MAX));
    }
}
