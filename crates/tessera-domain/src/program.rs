use chrono::{DateTime, Utc};

use crate::{
    Alphabet, Code, CodeInput, CodePattern, DomainError, GroupAddresses, Label, MaxTickets,
    NtpClass, ObjectId, ProgramId, RedemptionFailure, RedemptionLimit, TenantId, TicketLength,
    UrlPrefix, ValidityWindow,
};

/// Whether a program's tickets work at all. A program is created active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgramState {
    /// Tickets work inside the validity window.
    Active,
    /// Every ticket fails as if expired, until `endTime` is set again.
    Suspended,
}

impl ProgramState {
    /// The state's name in the API: `active` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramState::Active => "active",
            ProgramState::Suspended => "suspended",
        }
    }

    /// The state named `raw` (as `as_str` writes it), if any.
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
///
/// Every field is a value object, so a `NewProgram` cannot hold an out-of-range
/// value; what it can still get wrong is a combination, such as a code space
/// too small for `max_tickets`, which `Program::create` refuses:
///
/// ```
/// use tessera_domain::chrono::{Duration, TimeZone, Utc};
/// use tessera_domain::{
///     Alphabet, GroupAddresses, MaxTickets, NewProgram, NtpClass, ObjectId, Program, ProgramId,
///     RedemptionLimit, TenantId, TicketLength, ValidityWindow,
/// };
///
/// let now = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
/// let new = NewProgram {
///     name: None,
///     object_id: ObjectId::try_from("iq__concert".to_owned())?,
///     group_addresses: GroupAddresses::default(),
///     ntp_class: NtpClass::DEFAULT,
///     max_tickets: MaxTickets::try_from(20)?,
///     max_redemptions: RedemptionLimit::try_from(1)?,
///     window: ValidityWindow::new(now, now + Duration::days(1))?,
///     ticket_length: TicketLength::try_from(4)?,
///     alphabet: Alphabet::Numeric,
///     url_prefix: None,
///     one_active_per_subject: false,
///     allow_rollback: true,
///     code_pattern: None,
///     check_digit: false,
/// };
/// // 10^4 numeric codes leave room for 10 tickets at 1000 codes each, not 20.
/// let error = Program::create(ProgramId::generate(), TenantId::generate(), new.clone(), now)
///     .unwrap_err();
/// assert_eq!(error.field, "ticketLength");
///
/// let new = NewProgram { ticket_length: TicketLength::try_from(5)?, ..new };
/// let program = Program::create(ProgramId::generate(), TenantId::generate(), new, now)?;
/// assert_eq!(program.issued_tickets, 0);
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProgram {
    /// A free label for people; not unique.
    pub name: Option<Label>,
    /// What the program's tickets authorize (Eluvio's `objectId`).
    pub object_id: ObjectId,
    /// Groups whose permissions the tickets inherit.
    pub group_addresses: GroupAddresses,
    /// Eluvio's NTP class, carried for compatibility.
    pub ntp_class: NtpClass,
    /// How many tickets the program may ever issue; 0 means unlimited.
    pub max_tickets: MaxTickets,
    /// How many times each ticket may be redeemed (a ticket may ask for fewer).
    pub max_redemptions: RedemptionLimit,
    /// When the tickets are redeemable.
    pub window: ValidityWindow,
    /// How many characters each code has.
    pub ticket_length: TicketLength,
    /// Which characters the codes are drawn from.
    pub alphabet: Alphabet,
    /// The base of ticket links, for programs that hand out URLs.
    pub url_prefix: Option<UrlPrefix>,
    /// Whether a subject may hold only one active ticket of the program at a time.
    pub one_active_per_subject: bool,
    /// Whether redemptions may be rolled back (given back once each).
    pub allow_rollback: bool,
    /// The shape of generated codes; its `#` count is `ticket_length`.
    pub code_pattern: Option<CodePattern>,
    /// Whether every code ends with a check character (Luhn mod N).
    pub check_digit: bool,
}

/// A partial update: `None` leaves a field as it is; for the nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgramChanges {
    /// A new `max_tickets`; the code-space rule is checked again.
    pub max_tickets: Option<MaxTickets>,
    /// A new `max_redemptions`; it applies to tickets already issued too.
    pub max_redemptions: Option<RedemptionLimit>,
    /// A new start of the validity window.
    pub start_time: Option<DateTime<Utc>>,
    /// A new end of the validity window; setting it reactivates a suspended program.
    pub end_time: Option<DateTime<Utc>>,
    /// A new link base, or `Some(None)` to remove it.
    pub url_prefix: Option<Option<UrlPrefix>>,
    /// A new label, or `Some(None)` to remove it.
    pub name: Option<Option<Label>>,
    /// Whether redemptions may be rolled back from now on.
    pub allow_rollback: Option<bool>,
}

impl ProgramChanges {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A program (Eluvio's NTP instance): the policy its tickets are issued and
/// redeemed under.
///
/// Made by `Program::create` from a `NewProgram` (see its example); the fields
/// after `allow_rollback` are the program's life so far.
///
/// ```
/// # use tessera_domain::chrono::{Duration, TimeZone, Utc};
/// # use tessera_domain::{
/// #     Alphabet, GroupAddresses, MaxTickets, NewProgram, NtpClass, ObjectId, Program, ProgramId,
/// #     RedemptionLimit, TenantId, TicketLength, ValidityWindow,
/// # };
/// use tessera_domain::RedemptionFailure;
///
/// let start = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
/// let end = start + Duration::hours(8);
/// # let new = NewProgram {
/// #     name: None,
/// #     object_id: ObjectId::try_from("iq__concert".to_owned())?,
/// #     group_addresses: GroupAddresses::default(),
/// #     ntp_class: NtpClass::DEFAULT,
/// #     max_tickets: MaxTickets::UNLIMITED,
/// #     max_redemptions: RedemptionLimit::DEFAULT,
/// #     window: ValidityWindow::new(start, end)?,
/// #     ticket_length: TicketLength::DEFAULT,
/// #     alphabet: Alphabet::Humane,
/// #     url_prefix: None,
/// #     one_active_per_subject: false,
/// #     allow_rollback: true,
/// #     code_pattern: None,
/// #     check_digit: false,
/// # };
/// // `new` is a NewProgram whose window is [start, end).
/// let program = Program::create(ProgramId::generate(), TenantId::generate(), new, start)?;
///
/// assert_eq!(
///     program.check_redeemable(start - Duration::seconds(1)),
///     Err(RedemptionFailure::ProgramNotStarted)
/// );
/// assert_eq!(program.check_redeemable(start), Ok(()));
/// assert_eq!(program.check_redeemable(end), Err(RedemptionFailure::ProgramEnded));
/// // Codes may go out before the event, but not after it.
/// assert!(program.is_issuing(start - Duration::days(1)));
/// assert!(!program.is_issuing(end));
///
/// let suspended = program.suspended(start);
/// assert_eq!(
///     suspended.check_redeemable(start + Duration::hours(1)),
///     Err(RedemptionFailure::ProgramSuspended)
/// );
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The program's id.
    pub id: ProgramId,
    /// The tenant that owns the program.
    pub tenant_id: TenantId,
    /// As in `NewProgram`.
    pub name: Option<Label>,
    /// As in `NewProgram`.
    pub object_id: ObjectId,
    /// As in `NewProgram`.
    pub group_addresses: GroupAddresses,
    /// As in `NewProgram`.
    pub ntp_class: NtpClass,
    /// As in `NewProgram`; may change with `apply`.
    pub max_tickets: MaxTickets,
    /// As in `NewProgram`; may change with `apply`.
    pub max_redemptions: RedemptionLimit,
    /// As in `NewProgram`; may change with `apply`.
    pub window: ValidityWindow,
    /// As in `NewProgram`; never changes, so codes already issued stay valid.
    pub ticket_length: TicketLength,
    /// As in `NewProgram`; never changes, so codes already issued stay valid.
    pub alphabet: Alphabet,
    /// As in `NewProgram`; may change with `apply`.
    pub url_prefix: Option<UrlPrefix>,
    /// As in `NewProgram`.
    pub one_active_per_subject: bool,
    /// As in `NewProgram`; may change with `apply`.
    pub allow_rollback: bool,
    /// As in `NewProgram`; never changes.
    pub code_pattern: Option<CodePattern>,
    /// As in `NewProgram`; never changes, so codes already issued stay valid.
    pub check_digit: bool,
    /// Active or suspended.
    pub state: ProgramState,
    /// How many tickets have been issued so far (counted against `max_tickets`).
    pub issued_tickets: u32,
    /// 1 at creation, one more at each change.
    pub version: i64,
    /// When the program was created.
    pub created_at: DateTime<Utc>,
    /// When the program last changed.
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
    /// A new active program, version 1, with no tickets issued, if `new`'s
    /// fields make sense together: its alphabet and length must leave room for
    /// `max_tickets` (see `Alphabet::fits`).
    pub fn create(
        id: ProgramId,
        tenant_id: TenantId,
        new: NewProgram,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        check_code_space(new.alphabet, new.ticket_length, new.max_tickets)?;
        if let Some(pattern) = &new.code_pattern {
            if pattern.ticket_length() != new.ticket_length {
                return Err(DomainError::new(
                    "ticketLength",
                    "must be the number of # in codePattern",
                ));
            }
            // Literals were checked against the alphabet the pattern was parsed for.
            CodePattern::parse(pattern.as_str(), new.alphabet)?;
        }
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
            allow_rollback: new.allow_rollback,
            code_pattern: new.code_pattern,
            check_digit: new.check_digit,
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
            allow_rollback: changes.allow_rollback.unwrap_or(self.allow_rollback),
            state,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        })
    }

    /// The program suspended, one version later: every ticket fails as
    /// `ProgramSuspended` until `endTime` is set again.
    pub fn suspended(&self, now: DateTime<Utc>) -> Self {
        Self {
            state: ProgramState::Suspended,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// A fresh code for a ticket of the program, as shown to people: the pattern
    /// filled (or `ticketLength` random characters), then the check character
    /// with `checkDigit`. Its hash is of `Code::canonical`.
    pub fn generate_code(&self) -> Code {
        crate::code::generate_display(
            self.alphabet,
            self.code_pattern.as_ref(),
            self.ticket_length,
            self.check_digit,
        )
    }

    /// The canonical form of a code an issuer chose (`code` on issue, or a row of
    /// an import): without spaces and dashes, 4..64 of `A–Z a–z 0–9`, normalised
    /// as the alphabet says, ending with a valid check character when the program
    /// has `checkDigit`. The code-space rule does not apply. Errors name `code`.
    ///
    /// ```
    /// # use tessera_domain::chrono::{Duration, TimeZone, Utc};
    /// # use tessera_domain::*;
    /// # let now = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
    /// # let new = NewProgram {
    /// #     name: None, object_id: ObjectId::try_from("iq__x".to_owned())?,
    /// #     group_addresses: GroupAddresses::default(), ntp_class: NtpClass::DEFAULT,
    /// #     max_tickets: MaxTickets::UNLIMITED, max_redemptions: RedemptionLimit::DEFAULT,
    /// #     window: ValidityWindow::new(now, now + Duration::days(1))?,
    /// #     ticket_length: TicketLength::DEFAULT, alphabet: Alphabet::Humane, url_prefix: None,
    /// #     one_active_per_subject: false, code_pattern: None, check_digit: false,
    /// #     allow_rollback: true,
    /// # };
    /// let program = Program::create(ProgramId::generate(), TenantId::generate(), new, now)?;
    /// let code = program.chosen_code("summer-25")?;
    /// assert_eq!(code.expose_secret(), "SUMMER25");
    /// assert_eq!(program.chosen_code("abc").unwrap_err().field, "code");
    /// # Ok::<(), tessera_domain::DomainError>(())
    /// ```
    pub fn chosen_code(&self, raw: &str) -> Result<Code, DomainError> {
        let code = CodeInput(raw)
            .canonical(self.alphabet)
            .filter(|code| code.expose_secret().len() <= usize::from(crate::TicketLength::MAX))
            .ok_or_else(|| {
                DomainError::new(
                    "code",
                    "must be 4 to 64 of A-Z a-z 0-9 (spaces and dashes aside)",
                )
            })?;
        if self.check_digit && !crate::has_valid_check(self.alphabet, code.expose_secret()) {
            return Err(DomainError::new(
                "code",
                "must end with a valid check character (the program has checkDigit)",
            ));
        }
        Ok(code)
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
            allow_rollback: true,
            code_pattern: None,
            check_digit: false,
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
            allow_rollback: true,
            code_pattern: None,
            check_digit: false,
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
