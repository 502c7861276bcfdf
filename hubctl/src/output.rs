//! Printing results: the API's JSON for scripts, comfy-table tables for people.

use crate::cli::OutputFormat;
use anyhow::Context;
use comfy_table::{presets, ContentArrangement, Table};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Display;
use std::io::Write;

/// Where and how results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: OutputFormat,
}

impl Output {
    /// Prints in `format`.
    pub fn new(format: OutputFormat) -> Self {
        Self { format }
    }

    /// Whether scripts asked for JSON.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints the API's JSON as it came, or the table `render` makes of it as `T`.
    pub fn show<T: DeserializeOwned>(
        &self,
        body: Value,
        render: impl FnOnce(&T) -> Table,
    ) -> anyhow::Result<()> {
        if self.is_json() {
            return print_json(&body);
        }
        let typed: T = serde_json::from_value(body)
            .context("the hub's answer does not have the expected shape")?;
        print_line(&render(&typed).to_string())
    }

    /// A one-line confirmation in table mode; the JSON body in JSON mode.
    pub fn confirm(&self, body: &Value, message: &str) -> anyhow::Result<()> {
        if self.is_json() {
            print_json(body)
        } else {
            print_line(message)
        }
    }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(v)?)
}

/// One line on stdout, flushed (so a follower's output reaches a pipe at once).
pub fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// A note for the person at the terminal, on stderr so it never mixes into parsed output.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn base_table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// A listing: one row per item.
pub fn list<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> Table {
    let mut t = base_table();
    t.set_header(header);
    for row in rows {
        t.add_row(row);
    }
    t
}

/// One resource: field names and values.
pub fn record<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Table {
    let mut t = base_table();
    for (k, v) in fields {
        t.add_row([k.to_owned(), v]);
    }
    t
}

/// An optional value, `-` when absent.
pub fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Free text, `-` when empty.
pub fn text(s: &str) -> String {
    if s.trim().is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// A timestamp to the second, in UTC.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional timestamp.
pub fn opt_time(t: Option<&chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A list joined with commas, `-` when empty.
pub fn joined<T: Display>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
