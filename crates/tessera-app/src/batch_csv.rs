//! The CSV format of a batch of tickets, shared by every adapter that writes one
//! (the HTTP batch response, the operator's `tessera tickets issue` file): a
//! `ticketId,code` header line, then one `ticketId,code` line per ticket, `\n`
//! line ends. Formatted by hand, so the application needs no CSV library.
//!
//! The rows carry codes: write them where only their recipient reads them, and
//! never log them.

use std::fmt::Write as _;

use crate::usecases::IssuedCode;

/// The first line of every batch.
pub const HEADER: &str = "ticketId,code\n";

/// Roughly how many bytes a row takes, for sizing buffers.
const ROW_BYTES: usize = 48;

/// One `ticketId,code` line per ticket of `chunk`, appended to `out`.
pub fn push_rows(out: &mut String, chunk: &[IssuedCode]) {
    out.reserve(chunk.len() * ROW_BYTES);
    for issued in chunk {
        push_field(out, issued.ticket_id.as_str());
        out.push(',');
        push_field(out, issued.code.expose_secret());
        out.push('\n');
    }
}

/// One `ticketId,code` line per ticket of `chunk`.
pub fn rows(chunk: &[IssuedCode]) -> String {
    let mut out = String::new();
    push_rows(&mut out, chunk);
    out
}

/// A CSV field, quoted (RFC 4180) only if it needs to be, which ids and codes of
/// the defined alphabets never do.
fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        let _ = write!(out, "\"{}\"", field.replace('"', "\"\""));
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use tessera_domain::{Alphabet, CodeInput, TicketId, TicketLength};

    use super::*;

    fn issued(id: &str, code: &str) -> IssuedCode {
        IssuedCode {
            ticket_id: TicketId::parse(id).expect("a ticket id"),
            code: CodeInput(code)
                .normalize(Alphabet::Alphanumeric, TicketLength::DEFAULT)
                .expect("a code"),
        }
    }

    #[test]
    fn the_header_names_the_two_columns() {
        assert_eq!(HEADER, "ticketId,code\n");
    }

    #[test]
    fn rows_are_one_line_per_ticket() {
        let rows = rows(&[
            issued("tkt_33333333333333331111", "ABC123"),
            issued("tkt_44444444444444441111", "XYZ789"),
        ]);
        assert_eq!(
            rows,
            "tkt_33333333333333331111,ABC123\ntkt_44444444444444441111,XYZ789\n"
        );
        assert!(super::rows(&[]).is_empty());
    }

    #[test]
    fn rows_append() {
        let mut out = HEADER.to_owned();
        push_rows(&mut out, &[issued("tkt_33333333333333331111", "ABC123")]);
        assert_eq!(out, "ticketId,code\ntkt_33333333333333331111,ABC123\n");
    }

    #[test]
    fn fields_that_need_it_are_quoted() {
        let mut out = String::new();
        push_field(&mut out, "a,\"b\"");
        assert_eq!(out, "\"a,\"\"b\"\"\"");
    }
}
