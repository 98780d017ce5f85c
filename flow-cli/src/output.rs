//! Printing for people (aligned tables, UTC times) and for scripts (JSON), and reading the
//! times people type.

use std::io::Write;

use crate::error::CliError;

/// Where a command prints: standard output, as tables or as JSON.
pub struct Out {
    /// One JSON document instead of tables.
    pub json: bool,
    out: Box<dyn Write>,
}

impl Out {
    /// Printing to standard output.
    pub fn stdout(json: bool) -> Out {
        Out { json, out: Box::new(std::io::stdout().lock()) }
    }

    /// Prints `text` as it is.
    pub fn text(&mut self, text: &str) -> Result<(), CliError> {
        self.out.write_all(text.as_bytes())?;
        Ok(self.out.flush()?)
    }

    /// Prints `line` and a newline.
    pub fn line(&mut self, line: impl std::fmt::Display) -> Result<(), CliError> {
        writeln!(self.out, "{line}")?;
        Ok(self.out.flush()?)
    }

    /// Prints `value` as one JSON document on one line.
    pub fn json(&mut self, value: &serde_json::Value) -> Result<(), CliError> {
        self.line(value)
    }
}

/// `rows` under `headers`, each column as wide as its widest cell, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let headers: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count()) + 2));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `value`, or `-` for none.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// Unix milliseconds as a UTC time: `2026-12-01 08:30:00.000Z`.
pub fn time(ms: u64) -> String {
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil(i64::try_from(days).unwrap_or(i64::MAX));
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Reads a time given on the command line: Unix milliseconds, or a UTC date with an optional
/// time (`2026-12-01`, `2026-12-01T08:30`, `2026-12-01 08:30:00Z`).
pub fn parse_time(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let wrong = || {
        format!(
            "`{text}` is not a time: give Unix milliseconds, or a UTC date and time as \
             2026-12-01, 2026-12-01T08:30 or 2026-12-01T08:30:00Z"
        )
    };
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, clock) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let numbers = |part: &str, separator| -> Option<Vec<u64>> {
        part.split(separator).map(|number| number.parse().ok()).collect()
    };
    let date = numbers(date, '-').filter(|date| date.len() == 3).ok_or_else(wrong)?;
    let clock = numbers(clock, ':').filter(|clock| (2..=3).contains(&clock.len()));
    let clock = clock.ok_or_else(wrong)?;
    let (year, month, day) = (date[0], date[1], date[2]);
    let (hour, minute, second) = (clock[0], clock[1], clock.get(2).copied().unwrap_or(0));
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return Err(wrong());
    }
    let days = u64::try_from(days_from_civil(year, month, day)).map_err(|_| wrong())?;
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// The date `days` days after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The days from 1970-01-01 to a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> i64 {
    let year = year as i64 - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = month as i64;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_and_read_back_in_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(time(1_764_578_096_123), "2025-12-01 08:34:56.123Z");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00.000Z");
        assert_eq!(parse_time("2025-12-01T08:34:56Z"), Ok(1_764_578_096_000));
        assert_eq!(parse_time("2025-12-01 08:34:56"), Ok(1_764_578_096_000));
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400_000));
        assert_eq!(parse_time("2000-02-29T00:01"), Ok(951_782_460_000));
        assert_eq!(parse_time("1764578096123"), Ok(1_764_578_096_123));
        for wrong in ["yesterday", "2025-13-01", "2025-12-01T25:00", "2025-12", "12:00"] {
            let error = parse_time(wrong).unwrap_err();
            assert!(error.contains("is not a time") && error.contains(wrong), "{error}");
        }
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let rows = vec![
            vec!["1".to_owned(), "checkout".to_owned(), "x".to_owned()],
            vec!["22".to_owned(), "a".to_owned(), "-".to_owned()],
        ];
        let text = table(&["ID", "MACHINE", "KEY"], &rows);
        assert_eq!(text, "ID  MACHINE   KEY\n1   checkout  x\n22  a         -\n");
    }
}
