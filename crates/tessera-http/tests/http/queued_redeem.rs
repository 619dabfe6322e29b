//! `POST /v1/redeem` through the queued use case: an anonymous redemption is
//! awaited on the worker, and finishes on the blocking pool only when the use
//! case hands it back (refused, or not for the queue). Keyed calls never queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tessera_app::usecases::{QueuedRedeemUseCases, QueuedRedemption, RedeemRequest, Redemption};
use tessera_app::{AppError, AppResult};

use crate::redeem::redemption;
use crate::support::*;

/// Answers by the code presented, and records what each method was given.
#[derive(Default)]
struct Scripted {
    queued: Mutex<Vec<String>>,
    finished: Mutex<Vec<String>>,
}

impl QueuedRedeemUseCases for Scripted {
    fn redeem_queued(
        self: Arc<Self>,
        request: RedeemRequest,
    ) -> Pin<Box<dyn Future<Output = QueuedRedemption> + Send>> {
        Box::pin(async move {
            let code = request.code.expose_secret().to_owned();
            self.queued.lock().unwrap().push(code.clone());
            match code.as_str() {
                "GRANTED" => QueuedRedemption::Done(Ok(redemption())),
                "REFUSED" => QueuedRedemption::Refused(request),
                "BUSY" => QueuedRedemption::Done(Err(AppError::TooManyAttempts {
                    retry_after_seconds: 7,
                })),
                _ => QueuedRedemption::Unqueued(request),
            }
        })
    }

    fn redeem_refused(&self, request: RedeemRequest) -> AppResult<Redemption> {
        let code = request.code.expose_secret().to_owned();
        self.finished.lock().unwrap().push(code);
        Err(AppError::InvalidCode)
    }
}

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
    mocks.queued_redeem = Some(queue.clone());
    (mocks, queue)
}

#[actix_web::test]
async fn a_queued_success_is_answered_without_the_blocking_use_case() {
    let (mocks, queue) = with_queue(0);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("GRANTED"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["ticketId"], TICKET_ID);
    assert!(reply.body["accessToken"].is_string(), "{}", reply.text);
    assert_eq!(*queue.queued.lock().unwrap(), ["GRANTED"]);
    assert!(queue.finished.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn a_refusal_is_finished_by_redeem_refused_and_answers_invalid_code() {
    let (mocks, queue) = with_queue(0);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("REFUSED"))).await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_code");
    assert_eq!(*queue.finished.lock().unwrap(), ["REFUSED"]);
}

#[actix_web::test]
async fn an_attempt_not_for_the_queue_runs_the_blocking_redeem() {
    let (mocks, queue) = with_queue(1);
    let reply = send(mocks, post_json("/v1/redeem", None, &body("UNCACHED"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(*queue.queued.lock().unwrap(), ["UNCACHED"]);
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
async fn keyed_and_malformed_requests_never_queue() {
    let (mocks, queue) = with_queue(1);
    let reply = send(
        mocks,
        post_json("/v1/redeem", Some(REDEEMER_KEY), &body("GRANTED")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (mocks, malformed_queue) = with_queue(0);
    let reply = send(
        mocks,
        post_json("/v1/redeem", None, r#"{"code":"GRANTED"}"#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(queue.queued.lock().unwrap().is_empty());
    assert!(malformed_queue.queued.lock().unwrap().is_empty());
}
