//! Bulk issuance streamed as CSV.
//!
//! The (synchronous) use case runs on the blocking pool and hands each committed
//! chunk to a [`CsvSink`], which formats it as CSV rows and sends them into a
//! bounded channel: a slow client fills the channel, the sink waits (up to
//! `STALLED_READER_TIMEOUT`, then it stops the batch), and the
//! batch waits with it, so memory stays flat whatever the count. The response body
//! ([`CsvBody`]) drains the channel. When the client goes away the body, and with it
//! the receiver, is dropped: the sink's next `accept` returns `false`, which stops
//! the batch.
//!
//! The handler waits for the first message before answering, so failures before
//! any ticket exists become ordinary JSON errors. A failure after that can only cut
//! the response short: the body ends with an error, which aborts the (chunked)
//! response, and the failure is logged. Codes are never logged.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use tessera_app::batch_csv;
use tessera_app::usecases::{BatchSink, IssuedCode};
use tessera_app::{AppError, AppResult};
use tessera_domain::ProgramId;
use tokio::sync::mpsc;

/// The first line of every batch response.
pub(crate) const CSV_HEADER: &str = batch_csv::HEADER;

/// Chunks (of up to 5,000 rows each) buffered between the batch and the client.
const BUFFERED_CHUNKS: usize = 4;

/// What the batch tells the response.
#[derive(Debug)]
pub(crate) enum Message {
    /// CSV rows of one committed chunk.
    Rows(Bytes),
    /// The batch failed; nothing follows.
    Failed(AppError),
    /// The batch finished; nothing follows.
    Done,
}

/// Formats committed chunks as CSV rows into the channel.
struct CsvSink {
    tx: mpsc::Sender<Message>,
    sent_rows: bool,
}

/// How long a client may leave the stream unread (the channel full) before the
/// batch gives up on it: a stalled reader must not pin its reserved places, a
/// blocking thread and a database connection for as long as its socket stays open.
pub(crate) const STALLED_READER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl BatchSink for CsvSink {
    fn accept(&mut self, chunk: &[IssuedCode]) -> bool {
        let delivered = send_unless_stalled(
            &self.tx,
            Message::Rows(csv_rows(chunk)),
            STALLED_READER_TIMEOUT,
        );
        self.sent_rows |= delivered;
        delivered
    }
}

/// Sends `message`, waiting while the channel is full, for at most `patience`;
/// `false` when the receiver is gone (the client left) or did not read in time.
/// Either way the batch stops and gives back the places it has not issued yet.
fn send_unless_stalled(
    tx: &mpsc::Sender<Message>,
    mut message: Message,
    patience: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match tx.try_send(message) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    tracing::info!("a batch's reader stopped reading; the batch stops");
                    return false;
                }
                message = back;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

// Hand-written: the channel carries codes.
impl fmt::Debug for CsvSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvSink")
            .field("sent_rows", &self.sent_rows)
            .finish_non_exhaustive()
    }
}

/// One `ticketId,code` line per ticket, in the format of [`batch_csv`].
pub(crate) fn csv_rows(chunk: &[IssuedCode]) -> Bytes {
    Bytes::from(batch_csv::rows(chunk))
}

/// Runs `issue` on the blocking pool with a CSV sink; the messages arrive on the
/// returned receiver, always ending with `Done` or `Failed` (or nothing, if the
/// task died).
pub(crate) fn start<F>(program: ProgramId, issue: F) -> mpsc::Receiver<Message>
where
    F: FnOnce(&mut dyn BatchSink) -> AppResult<u32> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
    // Detached: the outcome travels through the channel.
    drop(actix_web::rt::task::spawn_blocking(move || {
        let mut sink = CsvSink {
            tx,
            sent_rows: false,
        };
        let last = match issue(&mut sink) {
            Ok(_) => Message::Done,
            Err(error) => {
                if sink.sent_rows {
                    tracing::error!(
                        program = %program,
                        %error,
                        "batch issuance failed after the response started; it is cut short"
                    );
                }
                Message::Failed(error)
            }
        };
        // The receiver may be gone (client left); nothing else to tell then.
        let _ = sink.tx.blocking_send(last);
    }));
    rx
}

/// Why a batch response was cut short (the detail is logged, not sent).
#[derive(Debug)]
pub(crate) struct BatchAborted;

impl fmt::Display for BatchAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the batch failed after the response started")
    }
}

impl std::error::Error for BatchAborted {}

/// The response body: `head` first, then the channel's rows until `Done`; `Failed`
/// or a channel closed without `Done` ends it with an error, so the client sees a
/// truncated response rather than a complete-looking one.
pub(crate) struct CsvBody {
    head: Option<Bytes>,
    rx: mpsc::Receiver<Message>,
    finished: bool,
    program: ProgramId,
}

impl CsvBody {
    /// A body that starts with the CSV header and `first`, the first message.
    pub(crate) fn new(program: ProgramId, first: Message, rx: mpsc::Receiver<Message>) -> Self {
        let (head, finished) = match first {
            Message::Rows(rows) => {
                let mut head = Vec::with_capacity(CSV_HEADER.len() + rows.len());
                head.extend_from_slice(CSV_HEADER.as_bytes());
                head.extend_from_slice(&rows);
                (Bytes::from(head), false)
            }
            Message::Done | Message::Failed(_) => (Bytes::from_static(CSV_HEADER.as_bytes()), true),
        };
        Self {
            head: Some(head),
            rx,
            finished,
            program,
        }
    }
}

impl fmt::Debug for CsvBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvBody")
            .field("program", &self.program)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl MessageBody for CsvBody {
    type Error = BatchAborted;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(head)));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        let next = ready!(this.rx.poll_recv(cx));
        match next {
            Some(Message::Rows(rows)) => Poll::Ready(Some(Ok(rows))),
            Some(Message::Done) => {
                this.finished = true;
                Poll::Ready(None)
            }
            // Logged where it happened.
            Some(Message::Failed(_)) => {
                this.finished = true;
                Poll::Ready(Some(Err(BatchAborted)))
            }
            None => {
                this.finished = true;
                tracing::error!(
                    program = %this.program,
                    "batch issuance stopped without finishing; the response is cut short"
                );
                Poll::Ready(Some(Err(BatchAborted)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tessera_domain::{Alphabet, CodeInput, TicketId, TicketLength};

    use super::*;

    fn issued(id: &str, code: &str) -> IssuedCode {
        IssuedCode {
            ticket_id: TicketId::parse(id).unwrap(),
            code: CodeInput(code)
                .normalize(Alphabet::Alphanumeric, TicketLength::DEFAULT)
                .unwrap(),
        }
    }

    #[test]
    fn rows_are_the_shared_format() {
        let chunk = [
            issued("tkt_33333333333333331111", "ABC123"),
            issued("tkt_44444444444444441111", "XYZ789"),
        ];
        assert_eq!(
            &csv_rows(&chunk)[..],
            b"tkt_33333333333333331111,ABC123\ntkt_44444444444444441111,XYZ789\n"
        );
        assert_eq!(CSV_HEADER, "ticketId,code\n");
    }

    #[test]
    fn a_reader_that_stops_reading_stops_the_batch_after_the_timeout() {
        let (tx, mut rx) = mpsc::channel(1);
        assert!(send_unless_stalled(
            &tx,
            Message::Done,
            Duration::from_millis(50)
        ));
        // Full, and nobody reads: refused once the patience runs out.
        let started = std::time::Instant::now();
        assert!(!send_unless_stalled(
            &tx,
            Message::Done,
            Duration::from_millis(50)
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        // A reader that catches up in time lets it through.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let first = rx.blocking_recv();
            let second = rx.blocking_recv();
            (first.is_some(), second.is_some())
        });
        assert!(send_unless_stalled(
            &tx,
            Message::Done,
            Duration::from_secs(5)
        ));
        drop(tx);
        assert_eq!(reader.join().unwrap(), (true, true));
    }

    #[test]
    fn the_sink_stops_the_batch_once_the_receiver_is_gone() {
        let (tx, rx) = mpsc::channel(1);
        let mut sink = CsvSink {
            tx,
            sent_rows: false,
        };
        let chunk = [issued("tkt_33333333333333331111", "ABC123")];
        assert!(sink.accept(&chunk));
        assert!(sink.sent_rows);
        drop(rx);
        assert!(!sink.accept(&chunk));
    }
}
