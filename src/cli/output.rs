//! How the operator commands print: aligned tables for people, RFC 3339 times in UTC.

use std::time::Duration;

use chrono::{NaiveDateTime, SecondsFormat};

/// A stored time as RFC 3339 in UTC, to the second: `2026-11-27T10:00:00Z`.
pub fn timestamp(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A duration in the largest unit that divides it, as the configuration writes them: `30s`,
/// `15m`, `2h`, `30d`.
pub fn duration(span: Duration) -> String {
    let seconds = span.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds > 0 && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// `1 session`, `3 sessions`.
pub fn sessions(count: usize) -> String {
    match count {
        1 => "1 session".to_owned(),
        n => format!("{n} sessions"),
    }
}

/// Columns padded to their widest cell, two spaces apart; the last is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index == last {
                text.push_str(cell);
            } else {
                let padding = width - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(padding + 2));
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec![
                "1".to_owned(),
                "ada@example.com".to_owned(),
                "no".to_owned(),
            ],
            vec!["22".to_owned(), "b@x.io".to_owned(), "yes".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "EMAIL", "DISABLED"], &rows),
            "ID  EMAIL            DISABLED\n\
             1   ada@example.com  no\n\
             22  b@x.io           yes\n"
        );
    }

    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(duration(Duration::from_secs(30)), "30s");
        assert_eq!(duration(Duration::from_secs(900)), "15m");
        assert_eq!(duration(Duration::from_secs(905)), "905s");
        assert_eq!(duration(Duration::from_secs(7200)), "2h");
        assert_eq!(duration(Duration::from_secs(0)), "0s");
    }
}
