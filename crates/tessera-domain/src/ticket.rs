use chrono::{DateTime, Utc};

use crate::redemption::{effective_limit, RedemptionFailure, EMAIL_MISMATCHES_BEFORE_LOCK};
use crate::{
    DomainError, Email, Payload, Program, ProgramId, RedemptionLimit, Subject, TenantId, TicketId,
};

/// Where a ticket is in its life; only an active ticket can be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketState {
    /// Redeemable, if its program and its uses allow.
    Active,
    /// Locked after repeated wrong emails, until `Ticket::locked_until`; an admin
    /// may set it active sooner.
    Locked,
    /// Disabled by an admin; an admin may set it active again.
    Disabled,
    /// Revoked by its issuer: final.
    Revoked,
}

impl TicketState {
    /// The state's name in the API: `active`, `locked`, `disabled` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Active => "active",
            TicketState::Locked => "locked",
            TicketState::Disabled => "disabled",
            TicketState::Revoked => "revoked",
        }
    }

    /// The state named `raw` (as `as_str` writes it), if any.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(TicketState::Active),
            "locked" => Some(TicketState::Locked),
            "disabled" => Some(TicketState::Disabled),
            "revoked" => Some(TicketState::Revoked),
            _ => None,
        }
    }

    /// An admin's change of state: only `active` (unlock, re-enable) and `disabled`
    /// may be asked for, and a revoked ticket stays revoked.
    pub fn admin_transition(self, target: TicketState) -> Result<TicketState, DomainError> {
        match (self, target) {
            (TicketState::Revoked, _) => Err(DomainError::new(
                "state",
                "a revoked ticket cannot change state",
            )),
            (_, TicketState::Active | TicketState::Disabled) => Ok(target),
            (_, TicketState::Locked | TicketState::Revoked) => {
                Err(DomainError::new("state", "must be active or disabled"))
            }
        }
    }
}

/// A ticket of a program. Its code is not here: only its keyed hash is stored.
///
/// The redemption rules, in the order `check_redeemable` applies them: the
/// program's (suspended, not started, ended), then the ticket's state, then its
/// remaining uses under `effective_limit`, then its bound email.
///
/// ```
/// # use tessera_domain::chrono::{Duration, TimeZone, Utc};
/// # use tessera_domain::{
/// #     Alphabet, GroupAddresses, MaxTickets, NewProgram, NtpClass, ObjectId, Program, ProgramId,
/// #     TenantId, TicketLength, ValidityWindow,
/// # };
/// use tessera_domain::{Email, RedemptionFailure, RedemptionLimit, Ticket, TicketId, TicketState};
///
/// let now = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
/// # let new = NewProgram {
/// #     name: None,
/// #     object_id: ObjectId::try_from("iq__concert".to_owned())?,
/// #     group_addresses: GroupAddresses::default(),
/// #     ntp_class: NtpClass::DEFAULT,
/// #     max_tickets: MaxTickets::UNLIMITED,
/// #     max_redemptions: RedemptionLimit::try_from(2)?,
/// #     window: ValidityWindow::new(now, now + Duration::days(1))?,
/// #     ticket_length: TicketLength::DEFAULT,
/// #     alphabet: Alphabet::Humane,
/// #     url_prefix: None,
/// #     one_active_per_subject: false,
/// #     allow_rollback: true,
/// #     code_pattern: None,
/// #     check_digit: false,
/// # };
/// // `program` allows 2 redemptions per ticket and is open now.
/// let program = Program::create(ProgramId::generate(), TenantId::generate(), new, now)?;
/// let mut ticket = Ticket {
///     id: TicketId::generate(),
///     tenant_id: program.tenant_id.clone(),
///     program_id: program.id.clone(),
///     email: Some(Email::parse("ann@example.com")?),
///     subject: None,
///     max_redemptions: None, // follow the program's limit
///     per_redeemer_limit: None,
///     redemptions: 0,
///     state: TicketState::Active,
///     failed_attempts: 0,
///     payload: None,
///     last_redeemed_at: None,
///     last_failed_at: None,
///     locked_until: None,
///     created_at: now,
///     version: 1,
/// };
///
/// assert_eq!(ticket.check_redeemable(&program, now, Some("Ann@Example.com")), Ok(()));
/// assert_eq!(
///     ticket.check_redeemable(&program, now, Some("bob@example.com")),
///     Err(RedemptionFailure::EmailMismatch)
/// );
/// assert_eq!(ticket.remaining(&program), 2);
/// ticket.redemptions = 2;
/// assert_eq!(
///     ticket.check_redeemable(&program, now, Some("ann@example.com")),
///     Err(RedemptionFailure::TicketExhausted)
/// );
/// # Ok::<(), tessera_domain::DomainError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket's id (public; not its code).
    pub id: TicketId,
    /// The tenant that owns the ticket's program.
    pub tenant_id: TenantId,
    /// The program the ticket belongs to.
    pub program_id: ProgramId,
    /// The email a redeemer must present, if the ticket is bound to one.
    pub email: Option<Email>,
    /// The user a URL ticket belongs to.
    pub subject: Option<Subject>,
    /// `None`: the program's limit, whatever it is at redemption time.
    pub max_redemptions: Option<RedemptionLimit>,
    /// Uses each distinct redeemer may have (besides the overall limit); `None`:
    /// no per-redeemer share, and no redeemer needs to be named.
    pub per_redeemer_limit: Option<RedemptionLimit>,
    /// How many times the ticket has been redeemed.
    pub redemptions: u32,
    /// Where the ticket is in its life.
    pub state: TicketState,
    /// Consecutive wrong emails since the last success or unlock.
    pub failed_attempts: u32,
    /// JSON the issuer attached, returned on each successful redemption.
    pub payload: Option<Payload>,
    /// When the ticket was last redeemed.
    pub last_redeemed_at: Option<DateTime<Utc>>,
    /// When the last wrong email was presented (the failures `failed_attempts`
    /// counts); other failed redemptions are recorded as events only.
    pub last_failed_at: Option<DateTime<Utc>>,
    /// When a lock after wrong emails ends: a `Locked` ticket counts as active
    /// from then on. `None` on a locked ticket: locked until an admin unlocks it.
    pub locked_until: Option<DateTime<Utc>>,
    /// When the ticket was issued.
    pub created_at: DateTime<Utc>,
    /// 1 at issuance, one more at each change.
    pub version: i64,
}

/// What an issuer chooses about a new ticket; everything else about it follows
/// from its program and the moment of issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTicketSpec {
    /// Redemption must then present this email.
    pub email: Option<Email>,
    /// The user the ticket belongs to (URL tickets).
    pub subject: Option<Subject>,
    /// The ticket's own limit; `None` follows the program's.
    pub max_redemptions: Option<RedemptionLimit>,
    /// Uses each distinct redeemer may have; `None` for no share.
    pub per_redeemer_limit: Option<RedemptionLimit>,
    /// Returned on every successful redemption.
    pub payload: Option<Payload>,
}

impl Ticket {
    /// A fresh, active, unused ticket of `program`, issued at `now`.
    pub fn new_active(program: &Program, spec: NewTicketSpec, now: DateTime<Utc>) -> Self {
        Self {
            id: TicketId::generate(),
            tenant_id: program.tenant_id.clone(),
            program_id: program.id.clone(),
            email: spec.email,
            subject: spec.subject,
            max_redemptions: spec.max_redemptions,
            per_redeemer_limit: spec.per_redeemer_limit,
            redemptions: 0,
            state: TicketState::Active,
            failed_attempts: 0,
            payload: spec.payload,
            last_redeemed_at: None,
            last_failed_at: None,
            locked_until: None,
            created_at: now,
            version: 1,
        }
    }

    /// The state as of `now`: a lock whose time is up is `Active` again, whether or
    /// not the row has been rewritten since.
    pub fn state_at(&self, now: DateTime<Utc>) -> TicketState {
        match (self.state, self.locked_until) {
            (TicketState::Locked, Some(until)) if until <= now => TicketState::Active,
            (state, _) => state,
        }
    }

    /// Redemptions left under `program`'s current limit.
    pub fn remaining(&self, program: &Program) -> u32 {
        effective_limit(self.max_redemptions, program.max_redemptions)
            .saturating_sub(self.redemptions)
    }

    /// Why this ticket cannot be redeemed now with `presented_email`, if it cannot.
    /// The order is the order a person would fix things in: the program first,
    /// then the ticket's state, its uses, and last the email.
    /// Mirrored by SQL functions `tessera_redeem` (whether) and `tessera_refusal_reason`
    /// (why, in this order); tessera-postgres/tests/rules_agree.rs pins all three.
    pub fn check_redeemable(
        &self,
        program: &Program,
        now: DateTime<Utc>,
        presented_email: Option<&str>,
    ) -> Result<(), RedemptionFailure> {
        program.check_redeemable(now)?;
        match self.state_at(now) {
            TicketState::Revoked => return Err(RedemptionFailure::TicketRevoked),
            TicketState::Disabled => return Err(RedemptionFailure::TicketDisabled),
            TicketState::Locked => return Err(RedemptionFailure::TicketLocked),
            TicketState::Active => {}
        }
        if self.remaining(program) == 0 {
            return Err(RedemptionFailure::TicketExhausted);
        }
        match &self.email {
            Some(bound) if !presented_email.is_some_and(|email| bound.matches(email)) => {
                Err(RedemptionFailure::EmailMismatch)
            }
            _ => Ok(()),
        }
    }

    /// Why the presented redeemer may not use this ticket, if it may not: checked
    /// after `check_redeemable`. `redeemer_uses` is `None` when no `redeemerId` was
    /// presented, else how many uses that redeemer has had. A ticket without a
    /// `per_redeemer_limit` accepts any redeemer, or none.
    /// Mirrored by SQL functions `tessera_redeem` and `tessera_refusal_reason`;
    /// tessera-postgres/tests/rules_agree.rs pins all three.
    ///
    /// ```
    /// # use tessera_domain::chrono::{TimeZone, Utc};
    /// # use tessera_domain::*;
    /// # let now = Utc.with_ymd_and_hms(2030, 6, 1, 9, 0, 0).unwrap();
    /// # let mut ticket = Ticket {
    /// #     id: TicketId::generate(), tenant_id: TenantId::generate(), program_id: ProgramId::generate(),
    /// #     email: None, subject: None, max_redemptions: None, per_redeemer_limit: None,
    /// #     redemptions: 0, state: TicketState::Active, failed_attempts: 0, payload: None,
    /// #     last_redeemed_at: None, last_failed_at: None, locked_until: None,
    /// #     created_at: now, version: 1,
    /// # };
    /// ticket.per_redeemer_limit = Some(RedemptionLimit::try_from(1)?);
    /// assert_eq!(ticket.check_redeemer(None), Err(RedemptionFailure::RedeemerRequired));
    /// assert_eq!(ticket.check_redeemer(Some(0)), Ok(()));
    /// assert_eq!(ticket.check_redeemer(Some(1)), Err(RedemptionFailure::RedeemerLimitReached));
    /// # Ok::<(), tessera_domain::DomainError>(())
    /// ```
    pub fn check_redeemer(&self, redeemer_uses: Option<u32>) -> Result<(), RedemptionFailure> {
        match (self.per_redeemer_limit, redeemer_uses) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(RedemptionFailure::RedeemerRequired),
            (Some(limit), Some(uses)) if uses >= limit.get() => {
                Err(RedemptionFailure::RedeemerLimitReached)
            }
            (Some(_), Some(_)) => Ok(()),
        }
    }

    /// The state after one more consecutive wrong email.
    pub fn after_email_mismatch(&self) -> (u32, TicketState) {
        let attempts = self.failed_attempts + 1;
        let state = if attempts >= EMAIL_MISMATCHES_BEFORE_LOCK {
            TicketState::Locked
        } else {
            self.state
        };
        (attempts, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::tests::{at, program};

    fn ticket(program: &Program, limit: i64, email: Option<&str>) -> Ticket {
        let spec = NewTicketSpec {
            email: email.map(|e| Email::parse(e).unwrap()),
            max_redemptions: Some(RedemptionLimit::try_from(limit).unwrap()),
            ..NewTicketSpec::default()
        };
        Ticket::new_active(program, spec, at(0))
    }

    #[test]
    fn the_effective_limit_is_the_lower_of_ticket_and_program() {
        let program = program(0); // maxRedemptions 3
        assert_eq!(ticket(&program, 10, None).remaining(&program), 3);
        assert_eq!(ticket(&program, 2, None).remaining(&program), 2);
        let mut used = ticket(&program, 10, None);
        used.redemptions = 3;
        assert_eq!(used.remaining(&program), 0);
        assert_eq!(
            used.check_redeemable(&program, at(1), None),
            Err(RedemptionFailure::TicketExhausted)
        );
    }

    #[test]
    fn a_ticket_without_its_own_limit_follows_the_program() {
        let mut program = program(0);
        let mut own = ticket(&program, 1, None);
        own.max_redemptions = None;
        assert_eq!(own.remaining(&program), 3);
        program.max_redemptions = RedemptionLimit::try_from(7).unwrap();
        assert_eq!(own.remaining(&program), 7);
    }

    #[test]
    fn a_lowered_program_limit_exhausts_tickets_already_used_that_much() {
        let mut program = program(0);
        let mut used = ticket(&program, 10, None);
        used.redemptions = 2;
        program.max_redemptions = RedemptionLimit::try_from(1).unwrap();
        assert_eq!(used.remaining(&program), 0);
    }

    #[test]
    fn program_rules_come_before_ticket_rules() {
        let program = program(0).suspended(at(0));
        let mut revoked = ticket(&program, 1, None);
        revoked.state = TicketState::Revoked;
        assert_eq!(
            revoked.check_redeemable(&program, at(1), None),
            Err(RedemptionFailure::ProgramSuspended)
        );
    }

    #[test]
    fn each_state_other_than_active_has_its_reason() {
        let program = program(0);
        for (state, failure) in [
            (TicketState::Revoked, RedemptionFailure::TicketRevoked),
            (TicketState::Disabled, RedemptionFailure::TicketDisabled),
            (TicketState::Locked, RedemptionFailure::TicketLocked),
        ] {
            let mut t = ticket(&program, 1, None);
            t.state = state;
            assert_eq!(t.check_redeemable(&program, at(1), None), Err(failure));
        }
    }

    #[test]
    fn a_bound_email_must_be_presented_in_any_case() {
        let program = program(0);
        let bound = ticket(&program, 1, Some("Ann@Example.com"));
        assert_eq!(
            bound.check_redeemable(&program, at(1), Some("ann@example.com")),
            Ok(())
        );
        assert_eq!(
            bound.check_redeemable(&program, at(1), None),
            Err(RedemptionFailure::EmailMismatch)
        );
        assert_eq!(
            bound.check_redeemable(&program, at(1), Some("bob@example.com")),
            Err(RedemptionFailure::EmailMismatch)
        );
        assert_eq!(
            ticket(&program, 1, None).check_redeemable(&program, at(1), Some("x@y.z")),
            Ok(())
        );
    }

    #[test]
    fn the_fifth_consecutive_wrong_email_locks() {
        let program = program(0);
        let mut t = ticket(&program, 1, Some("ann@example.com"));
        for expected in 1..EMAIL_MISMATCHES_BEFORE_LOCK {
            let (attempts, state) = t.after_email_mismatch();
            assert_eq!((attempts, state), (expected, TicketState::Active));
            t.failed_attempts = attempts;
        }
        assert_eq!(t.after_email_mismatch(), (5, TicketState::Locked));
    }

    #[test]
    fn admins_may_only_activate_or_disable_and_never_unrevoke() {
        assert_eq!(
            TicketState::Locked.admin_transition(TicketState::Active),
            Ok(TicketState::Active)
        );
        assert_eq!(
            TicketState::Active.admin_transition(TicketState::Disabled),
            Ok(TicketState::Disabled)
        );
        assert!(TicketState::Active
            .admin_transition(TicketState::Revoked)
            .is_err());
        assert!(TicketState::Revoked
            .admin_transition(TicketState::Active)
            .is_err());
    }

    #[test]
    fn a_lock_ends_at_locked_until_and_a_lock_without_an_end_lasts() {
        let program = program(0);
        let mut t = ticket(&program, 10, None);
        t.state = TicketState::Locked;
        t.locked_until = Some(at(5));
        assert_eq!(t.state_at(at(4)), TicketState::Locked);
        assert_eq!(
            t.check_redeemable(&program, at(4), None),
            Err(RedemptionFailure::TicketLocked)
        );
        assert_eq!(t.state_at(at(5)), TicketState::Active);
        assert_eq!(t.check_redeemable(&program, at(5), None), Ok(()));
        t.locked_until = None;
        assert_eq!(t.state_at(at(500)), TicketState::Locked);
        t.state = TicketState::Disabled;
        t.locked_until = Some(at(5));
        assert_eq!(t.state_at(at(6)), TicketState::Disabled, "only locks end");
    }
}
