//! Config errors that point at the offending text.
//!
//! An operator fixing a config needs the file, the line and the column, the key, and
//! what would have been valid. Every error the loader produces carries all four, so
//! `check`, a failed start and a refused reload print the same `FILE:LINE:COL: …` line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in a file the config references (the TOML file itself, an `ip_file`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as the operator named it (relative paths already resolved).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One thing wrong with a config, with where it is and which key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the bad text starts.
    pub location: Location,
    /// The dotted key the error is about (`server.listen`, `rule[3].ip_file`), or empty
    /// when the file could not be parsed far enough to know one.
    pub key: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(f, "{}: {}: {}", self.location, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in one load, in file order. Loading keeps going after an error
/// where it safely can, so one `check` run lists all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

/// The text of one file, kept so byte offsets (TOML spans) can be turned into lines and
/// columns only when an error is reported.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Byte offset where each line starts, so a position costs a binary search, not a
    /// scan of the text (a config with thousands of rules asks for thousands).
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps text read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The file's path as it appears in messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's contents.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn location(&self, offset: usize) -> Location {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// An error about the text at `span`.
    pub fn error(&self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: self.location(span.start),
            key: key.into(),
            message: message.into(),
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// An error at a known line and column of a file that is not TOML (an `ip_file` line).
pub fn error_at(
    file: &Path,
    line: usize,
    column: usize,
    key: impl Into<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError {
        location: Location {
            file: file.to_path_buf(),
            line,
            column,
        },
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let source = SourceFile::new("a.toml", "x = 1\ny = \"é2\"\n".to_string());
        assert_eq!(source.location(0).line, 1);
        assert_eq!(source.location(0).column, 1);
        let at_y_value = source.text().find('"').unwrap();
        let location = source.location(at_y_value);
        assert_eq!((location.line, location.column), (2, 5));
        let after_accent = source.text().find('2').unwrap();
        assert_eq!(source.location(after_accent).column, 7);
    }

    #[test]
    fn errors_print_as_file_line_column_key_message() {
        let source = SourceFile::new("conf/p.toml", "\n\nlisten = 3\n".to_string());
        let error = source.error(11..12, "server.listen", "expected an address");
        assert_eq!(
            error.to_string(),
            "conf/p.toml:3:10: server.listen: expected an address"
        );
    }
}
