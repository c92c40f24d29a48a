//! A small SQL lexer, just enough to reason about statement text a user pastes.
//!
//! Safe EXPLAIN must know how many statements a text holds and whether one of them changes data,
//! without a full parser. Both questions go wrong with naive string searching: a `;` or the
//! word `DELETE` inside a string literal, a quoted identifier, a comment or a dollar-quoted body
//! means nothing. This lexer knows PostgreSQL's quoting rules (standard strings with `''`,
//! `E'...'` strings with backslash escapes, `"identifiers"`, `$tag$ ... $tag$` bodies, nested
//! `/* */` comments and `--` comments) and yields only the tokens that matter: words, semicolons,
//! parentheses and everything else as opaque tokens. Plain strings are read with
//! `standard_conforming_strings = on`, PostgreSQL's default since 9.1.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier (or a number).
    Word,
    /// `"..."`
    QuotedIdent,
    /// `'...'`, `E'...'` or `$tag$...$tag$`
    Literal,
    /// `$1`
    Param,
    Semicolon,
    OpenParen,
    CloseParen,
    /// Any other character (operators, commas, dots...).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte offsets into the text.
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        &sql[self.start..self.end]
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn unterminated(what: &str, at: usize) -> Error {
    Error::invalid_input(format!(
        "The SQL text has an unterminated {what} starting at byte {at}."
    ))
}

/// End (exclusive) of a quoted run starting at `i` (which holds the quote character).
fn quoted_end(b: &[u8], i: usize, quote: u8, backslash_escapes: bool) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        if backslash_escapes && c == b'\\' {
            j += 2;
            continue;
        }
        if c == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// Split `sql` into tokens; whitespace and comments are dropped.
pub fn lex(sql: &str) -> Result<Vec<Token>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let push = |out: &mut Vec<Token>, kind, start, end| out.push(Token { kind, start, end });
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                let mut depth = 1usize;
                i += 2;
                while depth > 0 {
                    if i >= b.len() {
                        return Err(unterminated("comment", start));
                    }
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' => {
                let end = quoted_end(b, i, b'\'', false)
                    .ok_or_else(|| unterminated("string literal", i))?;
                push(&mut out, TokenKind::Literal, i, end);
                i = end;
            }
            b'"' => {
                let end = quoted_end(b, i, b'"', false)
                    .ok_or_else(|| unterminated("quoted identifier", i))?;
                push(&mut out, TokenKind::QuotedIdent, i, end);
                i = end;
            }
            b'$' => {
                if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    let start = i;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    push(&mut out, TokenKind::Param, start, i);
                    continue;
                }
                // `$tag$` or `$$`: the tag is an identifier that does not start with a digit.
                let mut j = i + 1;
                if j < b.len() && is_ident_start(b[j]) {
                    j += 1;
                    while j < b.len() && is_ident_cont(b[j]) && b[j] != b'$' {
                        j += 1;
                    }
                }
                if b.get(j) == Some(&b'$') {
                    let tag = &sql[i..=j];
                    let body = j + 1;
                    let close = sql[body..]
                        .find(tag)
                        .ok_or_else(|| unterminated("dollar-quoted string", i))?;
                    let end = body + close + tag.len();
                    push(&mut out, TokenKind::Literal, i, end);
                    i = end;
                } else {
                    push(&mut out, TokenKind::Other, i, i + 1);
                    i += 1;
                }
            }
            b';' => {
                push(&mut out, TokenKind::Semicolon, i, i + 1);
                i += 1;
            }
            b'(' => {
                push(&mut out, TokenKind::OpenParen, i, i + 1);
                i += 1;
            }
            b')' => {
                push(&mut out, TokenKind::CloseParen, i, i + 1);
                i += 1;
            }
            c if is_ident_start(c) => {
                let start = i;
                i += 1;
                while i < b.len() && is_ident_cont(b[i]) {
                    i += 1;
                }
                // E'...': an escape string, where a backslash escapes the quote.
                if i - start == 1 && (c == b'e' || c == b'E') && b.get(i) == Some(&b'\'') {
                    let end = quoted_end(b, i, b'\'', true)
                        .ok_or_else(|| unterminated("string literal", start))?;
                    push(&mut out, TokenKind::Literal, start, end);
                    i = end;
                } else {
                    push(&mut out, TokenKind::Word, start, i);
                }
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                push(&mut out, TokenKind::Word, start, i);
            }
            _ => {
                push(&mut out, TokenKind::Other, i, i + 1);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Statements in `sql`, as slices of tokens (empty statements between semicolons are dropped).
pub fn statements(tokens: &[Token]) -> Vec<&[Token]> {
    tokens
        .split(|t| t.kind == TokenKind::Semicolon)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(sql: &str) -> usize {
        statements(&lex(sql).unwrap()).len()
    }

    fn words(sql: &str) -> Vec<String> {
        lex(sql)
            .unwrap()
            .iter()
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(sql).to_ascii_uppercase())
            .collect()
    }

    #[test]
    fn semicolons_inside_quotes_and_comments_do_not_split() {
        assert_eq!(count("SELECT 1"), 1);
        assert_eq!(count("SELECT 1;"), 1);
        assert_eq!(count("  SELECT 1 ;  ;; -- trailing\n"), 1);
        assert_eq!(count("SELECT 1; SELECT 2"), 2);
        assert_eq!(count("SELECT ';' AS a"), 1);
        assert_eq!(count("SELECT 'it''s; here'"), 1);
        assert_eq!(count(r"SELECT E'a\'; b'"), 1);
        assert_eq!(count("SELECT \"we;ird\"\"x\" FROM t"), 1);
        assert_eq!(count("SELECT 1 -- ; not a split\n"), 1);
        assert_eq!(count("SELECT /* ; /* nested ; */ still ; */ 1"), 1);
        assert_eq!(count("SELECT $$ ; $$, $fn$ a ; $$ b $fn$"), 1);
        assert_eq!(count("SELECT $1::int; DELETE FROM t"), 2);
        assert_eq!(
            count("SELECT a$b$c FROM t; SELECT 2"),
            2,
            "$ inside identifiers"
        );
        assert_eq!(count(""), 0);
        assert_eq!(count(" -- only a comment"), 0);
    }

    #[test]
    fn words_inside_literals_are_not_words() {
        assert_eq!(
            words("SELECT 'DELETE' , \"UPDATE\", $x$ INSERT $x$ FROM t -- MERGE"),
            vec!["SELECT", "FROM", "T"]
        );
        assert_eq!(words("select e'\\'delete'"), vec!["SELECT"]);
    }

    #[test]
    fn unterminated_runs_are_refused() {
        for bad in [
            "SELECT 'abc",
            "SELECT \"abc",
            "SELECT $$ abc",
            "SELECT $q$ abc $Q$",
            "SELECT /* /* */ 1",
            "SELECT E'abc\\'",
        ] {
            let e = lex(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn multibyte_text_is_handled() {
        let sql = "SELECT 'Grüße;' AS \"Ärger\"; SELECT ü";
        assert_eq!(count(sql), 2);
        assert_eq!(words(sql), vec!["SELECT", "AS", "SELECT", "ü"]);
    }
}
