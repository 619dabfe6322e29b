//! `POST /v1/redeem` and `POST /v1/tickets/use` through the queued use cases: an
//! anonymous redemption, or a request whose key this process knows, is awaited
//! on the worker, and finishes on the blocking pool only when the use case hands
//! it back (refused, not for the queue) or the key is not known in memory.

use std::sync::{Arc, Mutex};

use tessera_app::model::{StandaloneUse, UsesLeft};
use tessera_app::usecases::{
    Awaited, Principal, QueuedRedemption, QueuedUse, QueuedUseCases, RedeemRequest, Redemption,
};
use tessera_app::{AppError, AppResult};
use tessera_domain::{PresentedApiKey, PresentedTicket, Role};

use crate::redeem::redemption;
use crate::support::*;

/// Knows only the redeemer's key in memory; answers by the code or ticket
/// presented, and records what each method was given (and with which caller).
#[derive(Default)]
struct Scripted {
    queued: Mutex<Vec<(String, Option<Role>)>>,
    finished: Mutex<Vec<(String, Option<Role>)>>,
    used: Mutex<Vec<String>>,
}

impl QueuedUseCases for Scripted {
    fn authenticate_in_memory(&self, key: &PresentedApiKey) -> Awaited<Option<Principal>> {
        // Memory may lag a delete: it still knows DELETED_KEY, which the
        // blocking lookup (`Mocks::new`) refuses.
        let known = [REDEEMER_KEY, DELETED_KEY]
            .contains(&key.expose_secret())
            .then(|| principal(Role::Redeemer));
        Box::pin(std::future::ready(known))
    }

    fn redeem_queued(
        self: Arc<Self>,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> Awaited<QueuedRedemption> {
        Box::pin(async move {
            let code = request.code.expose_secret().to_owned();
            let role = caller.as_ref().map(|caller| caller.role);
            self.queued.lock().unwrap().push((code.clone(), role));
            match code.as_str() {
                "GRANTED" => QueuedRedemption::Done(Ok(redemption())),
                "REFUSED" => QueuedRedemption::Refused(caller, request),
                "BUSY" => QueuedRedemption::Done(Err(AppError::TooManyAttempts {
                    retry_after_seconds: 7,
                })),
                _ => QueuedRedemption::Unqueued(caller, request),
            }
        })
    }

    fn redeem_refused(
        &self,
        caller: Option<Principal>,
        request: RedeemRequest,
    ) -> AppResult<Redemption> {
        let code = request.code.expose_secret().to_owned();
        let role = caller.as_ref().map(|caller| caller.role);
        self.finished.lock().unwrap().push((code, role));
        Err(match caller {
            Some(_) => AppError::Redemption(tessera_domain::RedemptionFailure::TicketExhausted),
            None => AppError::InvalidCode,
        })
    }

    fn use_standalone_queued(
        self: Arc<Self>,
        caller: Principal,
        presented: PresentedTicket,
    ) -> Awaited<QueuedUse> {
        Box::pin(async move {
            let ticket = presented.expose_secret().to_owned();
            self.used.lock().unwrap().push(ticket.clone());
            match ticket.as_str() {
                "live" => QueuedUse::Done(Ok(StandaloneUse {
                    uses_left: UsesLeft::Left(4),
                    payload: None,
                })),
                "gone" => QueuedUse::Done(Err(AppError::NotFound)),
                _ => QueuedUse::Unqueued(caller, presented),
            }
        })
    }
}

/// A key this process's memory still knows, deleted from the database.
const DELETED_KEY: &str = "tsk_deleted_meanwhile";

fn body(code: &str) -> String {
    format!(r#"{{"code":"{code}","programId":"{PROGRAM_ID}"}}"#)
}

/// Mocks whose blocking `redeem` may be called `times` times (answering a
/// redemption), with the scripted queue in front of it.
fn with_queue(times: usize) -> (Mocks, Arc<Scripted>) {
    let mut mocks = Mocks::new();
    mocks
        .redeem
        .expect_redeem()
        .times(times)
        .returning(|_, _| Ok(redemption()));
    let queue = Arc::new(Scripted::default());
    mocks.queued = Some(queue.clone());
    (mocks, queue)
}

fn codes(list: &Mutex<Vec<(String, Option<Role>)>>) -> Vec<(String, Option<Role>)> {
    list.lock().unwrap().clone()
}

#[actix_web::test]
async fn a_queued_success_is_answered_without_the_blocking_use_case() {
    let (mocks, queue) = with_queue(0);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("GRANTED"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["ticketId"], TICKET_ID);
    assert!(reply.body["accessToken"].is_string(), "{}", reply.text);
    assert_eq!(codes(&queue.queued), [("GRANTED".to_owned(), None)]);
    assert!(queue.finished.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn a_refusal_is_finished_by_redeem_refused_and_answers_invalid_code() {
    let (mocks, queue) = with_queue(0);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("REFUSED"))).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_code");
    assert_eq!(codes(&queue.finished), [("REFUSED".to_owned(), None)]);
}

#[actix_web::test]
async fn an_attempt_not_for_the_queue_runs_the_blocking_redeem() {
    let (mocks, queue) = with_queue(1);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("UNCACHED"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(codes(&queue.queued), [("UNCACHED".to_owned(), None)]);
    assert!(queue.finished.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn an_answer_decided_in_the_queue_keeps_its_status_and_headers() {
    let (mocks, _) = with_queue(0);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("BUSY"))).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some("7"));
}

#[actix_web::test]
async fn a_key_known_in_memory_queues_with_its_caller_and_keeps_its_reasons() {
    let (mocks, queue) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(REDEEMER_KEY), &body("GRANTED")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (mocks, refused) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(REDEEMER_KEY), &body("REFUSED")),
    )
    .await;
    reply.assert_error(409, "ticket_exhausted");
    let redeemer = Some(Role::Redeemer);
    assert_eq!(codes(&queue.queued), [("GRANTED".to_owned(), redeemer)]);
    assert_eq!(codes(&refused.finished), [("REFUSED".to_owned(), redeemer)]);
}

#[actix_web::test]
async fn keys_not_known_in_memory_and_malformed_requests_never_queue() {
    // Known to the blocking lookup only: the blocking redemption runs.
    let (mocks, queue) = with_queue(1);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(ADMIN_KEY), &body("GRANTED")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Unknown everywhere: refused before the body is looked at.
    let (mocks, unknown) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some("tsk_unknown"), r#"{"code":"GRANTED"}"#),
    )
    .await;
    reply.assert_error(401, "unauthorized");
    let (mocks, malformed) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", None, r#"{"code":"GRANTED"}"#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let (mocks, keyed_malformed) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(REDEEMER_KEY), r#"{"code":"GRANTED"}"#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    for queue in [queue, unknown, malformed, keyed_malformed] {
        assert!(queue.queued.lock().unwrap().is_empty());
    }
}

fn use_body(ticket: &str) -> String {
    format!(r#"{{"ticket":"{ticket}"}}"#)
}

#[actix_web::test]
async fn a_standalone_use_with_a_key_known_in_memory_is_awaited_on_the_worker() {
    let (mocks, queue) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/tickets/use", Some(REDEEMER_KEY), &use_body("live")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["uses"], 4);
    let (mocks, gone) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/tickets/use", Some(REDEEMER_KEY), &use_body("gone")),
    )
    .await;
    reply.assert_error(404, "ticket_not_found");
    assert_eq!(*queue.used.lock().unwrap(), ["live"]);
    assert_eq!(*gone.used.lock().unwrap(), ["gone"]);
}

#[actix_web::test]
async fn a_standalone_use_the_queue_hands_back_or_a_key_not_in_memory_runs_blocking() {
    for (key, ticket, queued) in [(REDEEMER_KEY, "unqueued", true), (ADMIN_KEY, "live", false)] {
        let (mut mocks, queue) = with_queue(0);
        mocks
            .standalone
            .expect_use_standalone()
            .withf(move |_, presented| presented.expose_secret() == ticket)
            .times(1)
            .returning(|_, _| Err(AppError::NotFound));
        let reply = send(
            mocks,
            post_json("/v1/tickets/use", Some(key), &use_body(ticket)),
        )
        .await;
        reply.assert_error(404, "ticket_not_found");
        assert_eq!(queue.used.lock().unwrap().len(), usize::from(queued));
    }
    let (mocks, queue) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/tickets/use", Some("tsk_unknown"), "not json"),
    )
    .await;
    reply.assert_error(401, "unauthorized");
    assert!(queue.used.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn a_key_memory_still_knows_is_confirmed_before_anything_but_a_success() {
    // The statement checked the key (the store's business): a success stands.
    let (mocks, queue) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(DELETED_KEY), &body("GRANTED")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(queue.queued.lock().unwrap().len(), 1);
    // Every other answer waits for the key's confirmation, which refuses it.
    for (path, request) in [
        ("/v1/redeem", body("REFUSED")),
        ("/v1/redeem", body("BUSY")),
        ("/v1/redeem", body("UNCACHED")),
        ("/v1/redeem", r#"{"code":"GRANTED"}"#.to_owned()),
        ("/v1/tickets/use", use_body("gone")),
        ("/v1/tickets/use", use_body("unqueued")),
        ("/v1/tickets/use", "not json".to_owned()),
    ] {
        let (mocks, queue) = with_queue(0);
        let reply = send(mocks, post_json(path, Some(DELETED_KEY), &request)).await;
        reply.assert_error(401, "unauthorized");
        assert!(
            queue.finished.lock().unwrap().is_empty(),
            "{path} {request}: nothing finished for a deleted key"
        );
    }
}
