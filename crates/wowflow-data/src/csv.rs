//! Plain CSV for people who keep data in spreadsheets: reading labeled rows
//! (`label, x1, …, xd`) and writing results.
//!
//! Reading is deliberately narrow: comma-separated numbers, one optional header line
//! (detected because it does not parse as numbers), blank lines and `#` comments skipped.
//! Every problem is reported with its line and column, because a CSV is usually edited
//! by hand and the person needs to find the cell.

use crate::atomic::write_atomic;
use crate::error::{name, DataError, Result};
use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// Rows of a labeled table: `features` is row-major `labels.len() × dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledRows {
    /// The feature columns, row-major `labels.len() × dim`, in file order; all finite.
    pub features: Vec<f32>,
    /// Number of features per row `d` (the columns after the label), at least 1.
    pub dim: usize,
    /// The first column of each row, in file order (a whole number written as a float,
    /// such as `3.0`, is accepted).
    pub labels: Vec<i64>,
    /// The header line's column names, when the file has one.
    pub header: Option<Vec<String>>,
}

/// Reads a CSV whose first column is an integer class label and whose other columns are
/// features.
pub fn read_labeled_csv(path: &Path) -> Result<LabeledRows> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_labeled_csv(&bytes, &name(path))
}

/// Splits one line into trimmed cells; double-quoted cells may hold commas (`""` is a quote).
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(ch),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Parses labeled CSV bytes; `file` names the source in errors.
pub fn parse_labeled_csv(bytes: &[u8], file: &str) -> Result<LabeledRows> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DataError::format(
            file,
            format!(
                "not UTF-8 text (byte {}): is this really a CSV file?",
                e.valid_up_to()
            ),
        )
    })?;
    let mut out = LabeledRows {
        features: Vec::new(),
        dim: 0,
        labels: Vec::new(),
        header: None,
    };
    let mut columns: Option<usize> = None;
    for (ln, raw) in text.lines().enumerate() {
        let line_no = ln + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = cells(line);
        let first_data = out.labels.is_empty();
        if first_data && out.header.is_none() && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            out.header = Some(fields.clone());
            columns = Some(fields.len());
            continue;
        }
        let expected = *columns.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(DataError::shape(
                file,
                format!(
                    "line {line_no} has {} columns, expected {expected} (a label and {} features, as on the first {})",
                    fields.len(),
                    expected.saturating_sub(1),
                    if out.header.is_some() { "line (header)" } else { "data line" }
                ),
            ));
        }
        if expected < 2 {
            return Err(DataError::shape(
                file,
                format!("line {line_no} has {expected} column; expected a label column followed by at least one feature"),
            ));
        }
        out.dim = expected - 1;
        let label = parse_label(&fields[0]).ok_or_else(|| {
            DataError::format(
                file,
                format!(
                    "line {line_no}, column 1: label `{}` is not an integer",
                    fields[0]
                ),
            )
        })?;
        let row = out.labels.len();
        out.labels.push(label);
        for (j, cell) in fields[1..].iter().enumerate() {
            let v: f32 = cell.parse().map_err(|_| {
                DataError::format(
                    file,
                    format!("line {line_no}, column {}: `{cell}` is not a number", j + 2),
                )
            })?;
            if !v.is_finite() {
                return Err(DataError::NonFinite {
                    file: file.to_string(),
                    location: format!("row {row} (line {line_no}), column {} (feature {j})", j + 2),
                    value: v as f64,
                });
            }
            out.features.push(v);
        }
    }
    if out.labels.is_empty() {
        return Err(DataError::shape(
            file,
            "no data rows (expected lines of `label, x1, ..., xd`)",
        ));
    }
    Ok(out)
}

fn parse_label(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        let v: f64 = s.parse().ok()?;
        (v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
    })
}

/// Writes a CSV file atomically: an optional header (skipped when `header` is empty) and
/// one line per row. Cells are anything `Display` (numbers print in Rust's shortest
/// round-trip form); cells containing commas, quotes or newlines are quoted.
///
/// Every row must have as many cells as the header (or as the first row when there is no
/// header), so a truncated row cannot go unnoticed.
pub fn write_csv<R, C>(path: &Path, header: &[&str], rows: R) -> Result<()>
where
    R: IntoIterator,
    R::Item: IntoIterator<Item = C>,
    C: Display,
{
    let file = name(path);
    write_atomic(path, |w| {
        let io = |e| DataError::Io {
            file: file.clone(),
            source: e,
        };
        let mut width = (!header.is_empty()).then_some(header.len());
        if !header.is_empty() {
            let line: Vec<String> = header.iter().map(|h| quote(h)).collect();
            writeln!(w, "{}", line.join(",")).map_err(io)?;
        }
        let mut line = String::new();
        for (r, row) in rows.into_iter().enumerate() {
            line.clear();
            let mut n = 0;
            for cell in row {
                if n > 0 {
                    line.push(',');
                }
                line.push_str(&quote(&cell.to_string()));
                n += 1;
            }
            let expected = *width.get_or_insert(n);
            if n != expected {
                return Err(DataError::shape(
                    file.clone(),
                    format!("row {r} has {n} cells, expected {expected}"),
                ));
            }
            line.push('\n');
            w.write_all(line.as_bytes()).map_err(io)?;
        }
        Ok(())
    })
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_detected_and_rows_parse() {
        let t = b"label,x,y\n1, 0.5, 2\n\n# comment\n0,1e-3,-4\n";
        let r = parse_labeled_csv(t, "a.csv").unwrap();
        assert_eq!(
            r.header.as_deref(),
            Some(&["label".to_string(), "x".into(), "y".into()][..])
        );
        assert_eq!(r.labels, vec![1, 0]);
        assert_eq!(r.dim, 2);
        assert_eq!(r.features, vec![0.5, 2.0, 1e-3, -4.0]);
        let r = parse_labeled_csv(b"3.0,1\n2,2\n", "b.csv").unwrap();
        assert_eq!((r.header, r.labels), (None, vec![3, 2]));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse_labeled_csv(b"0,1,2\n1,2\n", "c.csv").unwrap_err();
        assert!(
            e.to_string().contains("line 2 has 2 columns, expected 3"),
            "{e}"
        );
        let e = parse_labeled_csv(b"0,1,2\n1,2,nan\n", "c.csv").unwrap_err();
        assert!(matches!(e, DataError::NonFinite { .. }), "{e}");
        assert!(e.to_string().contains("row 1 (line 2), column 3"), "{e}");
        let e = parse_labeled_csv(b"a,b\n0,1\n1,x\n", "c.csv").unwrap_err();
        assert!(e.to_string().contains("line 3, column 2: `x`"), "{e}");
        let e = parse_labeled_csv(b"0.5,1\n", "c.csv").unwrap_err();
        assert!(e.to_string().contains("label `0.5`"), "{e}");
        assert!(parse_labeled_csv(b"a,b\n", "c.csv").is_err());
        assert!(parse_labeled_csv(b"1\n2\n", "c.csv").is_err());
        assert!(parse_labeled_csv(&[0xff, 0xfe], "c.csv").is_err());
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        write_csv(&p, &["label", "a,b"], [[1.0f32, 0.25], [2.0, -3.5]]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "label,\"a,b\"\n1,0.25\n2,-3.5\n");
        let r = read_labeled_csv(&p).unwrap();
        assert_eq!(r.features, vec![0.25, -3.5]);
        let e = write_csv(&p, &["a", "b"], vec![vec![1, 2], vec![3]]).unwrap_err();
        assert!(
            e.to_string().contains("row 1 has 1 cells, expected 2"),
            "{e}"
        );
        // The failed write left the previous file intact.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }
}
