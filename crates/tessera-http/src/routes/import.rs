//! `POST /v1/programs/{id}/tickets/import`: a CSV body read as it streams in. The
//! async side forwards the body's chunks through a bounded channel to a blocking
//! task, where the `csv` crate parses rows that the use case validates, hashes
//! and writes chunk by chunk in one transaction. At most a few chunks are ever
//! in memory, whatever the body's size (up to 64 MiB).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use tessera_app::usecases::{ImportRow, RowError};
use tessera_domain::PresentedCode;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::{json, program_id};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The largest import body.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Body chunks in flight between the connection and the parser.
const CHANNEL_CHUNKS: usize = 16;

/// `201` of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportResponse {
    /// How many tickets were imported.
    pub imported: u32,
}

/// The request body as `Read`, fed by the channel; `Err` once the body passed
/// the limit (the flag tells the handler to answer 413).
struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
    too_large: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None if self.too_large.load(Ordering::SeqCst) => {
                    return Err(io::Error::other("body over the import limit"))
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The columns an import may name, by position in the header.
struct Columns {
    code: usize,
    email: Option<usize>,
    max_redemptions: Option<usize>,
    subject: Option<usize>,
}

fn columns(header: &csv::StringRecord) -> Result<Columns, ApiError> {
    let mut code = None;
    let mut cols = Columns {
        code: 0,
        email: None,
        max_redemptions: None,
        subject: None,
    };
    for (index, name) in header.iter().enumerate() {
        let slot =
            match name.trim() {
                "code" => &mut code,
                "email" => &mut cols.email,
                "maxRedemptions" => &mut cols.max_redemptions,
                "subject" => &mut cols.subject,
                _ => return Err(ApiError::invalid(
                    "csv: line 1: the header may name only code, email, maxRedemptions, subject",
                )),
            };
        if slot.replace(index).is_some() {
            return Err(ApiError::invalid("csv: line 1: a column is named twice"));
        }
    }
    cols.code = code.ok_or_else(|| ApiError::invalid("csv: line 1: the header must name code"))?;
    Ok(cols)
}

/// One record as a row; an empty cell means none.
fn row(cols: &Columns, record: &csv::StringRecord, line: u64) -> Result<ImportRow, RowError> {
    let cell = |index: Option<usize>| {
        index
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let max_redemptions = cell(cols.max_redemptions)
        .map(|raw| raw.parse::<i64>())
        .transpose()
        .map_err(|_| RowError {
            line,
            problem: "maxRedemptions: must be an integer".to_owned(),
        })?;
    Ok(ImportRow {
        line,
        code: PresentedCode::new(cell(Some(cols.code)).unwrap_or_default()),
        email: cell(cols.email),
        max_redemptions,
        subject: cell(cols.subject),
    })
}

/// Imports tickets whose codes the issuer already has (issuer), all or nothing.
/// Body `text/csv` (≤ 64 MiB, ≤ 1,000,000 rows): a header naming `code` and any
/// of `email`, `maxRedemptions`, `subject`, then one ticket per row. Errors name
/// up to 10 line numbers (the header is line 1), never codes.
#[utoipa::path(post, path = "/v1/programs/{program_id}/tickets/import", tag = "tickets",
    params(("program_id" = String, Path, description = "`prg_...`")),
    request_body(content = String, content_type = "text/csv",
        example = json!("code,email\nSUMMER-0001,\nSUMMER-0002,ann@example.com\n")),
    responses(
        (status = 201, description = "Every row imported", body = ImportResponse),
        (status = 400, description = "`invalid_request`: a bad header, or bad rows (their lines named)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`code_taken` (lines of codes repeated in the file or already in the tenant), `max_tickets_reached`, `program_not_active`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over 64 MiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not `text/csv`", body = ErrorBody),
    ),
    security(("apiKey" = [])))]
pub(crate) async fn import_tickets(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let program = program_id(&path)?;
    let csv_typed = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with("text/csv"));
    if !csv_typed {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "An import's body must be text/csv.",
        ));
    }
    let (sender, chunks) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let too_large = Arc::new(AtomicBool::new(false));
    let reader = ChannelReader {
        chunks,
        current: Bytes::new(),
        too_large: too_large.clone(),
    };
    let task = web::block(move || -> Result<u32, ApiError> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(reader);
        let header = csv
            .headers()
            .map_err(|_| ApiError::invalid("csv: line 1: not a CSV header"))?
            .clone();
        let cols = columns(&header)?;
        let mut records = csv.records().map(|record| {
            let line = |record: &csv::StringRecord| record.position().map_or(0, |p| p.line());
            match record {
                Ok(record) => row(&cols, &record, line(&record)),
                Err(error) => Err(RowError {
                    line: error.position().map_or(0, csv::Position::line),
                    problem: "not a valid CSV row".to_owned(),
                }),
            }
        });
        Ok(state
            .tickets
            .import_tickets(&caller.0, &program, &mut records)?)
    });
    // Forward the body; stop when the parser is gone (it finished or failed).
    let mut received = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("csv: the body could not be read"))?;
        received += chunk.len();
        if received > IMPORT_BODY_LIMIT {
            too_large.store(true, Ordering::SeqCst);
            break;
        }
        if sender.send(chunk).await.is_err() {
            break;
        }
    }
    drop(sender);
    let outcome = task
        .await
        .map_err(|error| ApiError::internal(format!("the import task failed: {error}")))?;
    if too_large.load(Ordering::SeqCst) {
        return Err(ApiError::payload_too_large(
            "An import's body may be at most 64 MiB.",
        ));
    }
    let imported = outcome?;
    Ok(json(StatusCode::CREATED, &ImportResponse { imported }))
}
