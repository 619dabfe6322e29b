//! `--labelled FILE`: requests of several kinds interleaved in one run, each row
//! naming its own program and a label, with every label's answers counted and
//! timed apart. `make bench` times its failure kinds this way, so that the
//! machine's drift during the step lands on every kind alike instead of on
//! whichever kind's run came last.
//!
//! The file is CSV: a `label,programId,code` header, then one row per request,
//! sent in file order (round-robin when the run outlasts the file).

/// The rows of a labelled file, with labels and programs interned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Labelled {
    pub(crate) labels: Vec<String>,
    pub(crate) programs: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

/// One request: indexes into [`Labelled::labels`] and [`Labelled::programs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) label: usize,
    pub(crate) program: usize,
    pub(crate) code: String,
}

/// Labels become key prefixes of the result's JSON, so they are short names that
/// cannot be mistaken for the result's own keys.
fn valid_label(label: &str) -> bool {
    (1..=32).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !matches!(label, "ok" | "shed")
}

/// A field without its surrounding quotes (none of ours contains `,` or `"`).
fn unquoted(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

fn intern(list: &mut Vec<String>, value: &str) -> usize {
    list.iter().position(|v| v == value).unwrap_or_else(|| {
        list.push(value.to_owned());
        list.len() - 1
    })
}

impl Labelled {
    pub(crate) fn parse(text: &str, limit: Option<usize>) -> Result<Self, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("label,programId,code") {
            return Err("a labelled file starts with the header label,programId,code".to_owned());
        }
        let mut parsed = Self::default();
        for (n, line) in lines.take(limit.unwrap_or(usize::MAX)).enumerate() {
            let fields: Vec<&str> = line.split(',').map(unquoted).collect();
            let [label, program, code] = fields[..] else {
                return Err(format!("row {}: three fields, not {line:?}", n + 1));
            };
            if !valid_label(label) {
                return Err(format!(
                    "row {}: a label is 1-32 of a-z, 0-9 and '-' (not ok or shed), not {label:?}",
                    n + 1
                ));
            }
            if program.is_empty() || code.is_empty() {
                return Err(format!("row {}: an empty program or code", n + 1));
            }
            let label = intern(&mut parsed.labels, label);
            let program = intern(&mut parsed.programs, program);
            parsed.rows.push(Row {
                label,
                program,
                code: code.to_owned(),
            });
        }
        if parsed.rows.is_empty() {
            return Err("no rows".to_owned());
        }
        if parsed.labels.len() > 64 {
            return Err("at most 64 labels".to_owned());
        }
        Ok(parsed)
    }

    /// An unlabelled run: every code under the one program, all under one label.
    pub(crate) fn single(program: String, codes: Vec<String>) -> Self {
        Self {
            labels: Vec::new(),
            programs: vec![program],
            rows: codes
                .into_iter()
                .map(|code| Row {
                    label: 0,
                    program: 0,
                    code,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_intern_their_labels_and_programs_in_order() {
        let text = "label,programId,code\nknown,prg_a,AbC1\r\nunknown,prg_a,\"xYz9\"\n\nknown,prg_b,Q1w2\n";
        let parsed = Labelled::parse(text, None).unwrap();
        assert_eq!(parsed.labels, ["known", "unknown"]);
        assert_eq!(parsed.programs, ["prg_a", "prg_b"]);
        assert_eq!(
            parsed.rows[1],
            Row {
                label: 1,
                program: 0,
                code: "xYz9".to_owned()
            }
        );
        assert_eq!(parsed.rows[2].program, 1);
        assert_eq!(Labelled::parse(text, Some(1)).unwrap().rows.len(), 1);
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in [
            "ticketId,code\ntkt_a,AbC1\n",
            "label,programId,code\n",
            "label,programId,code\nknown,prg_a\n",
            "label,programId,code\nKnown,prg_a,AbC1\n",
            "label,programId,code\nok,prg_a,AbC1\n",
            "label,programId,code\nknown,,AbC1\n",
        ] {
            assert!(Labelled::parse(bad, None).is_err(), "{bad:?}");
        }
    }
}
