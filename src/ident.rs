//! Quoting of SQL identifiers. No user text is ever pasted into SQL any other way.

/// Quote an identifier as PostgreSQL's `quote_ident` would always do: wrap in double quotes,
/// double any embedded double quote. Rejects NUL, which PostgreSQL cannot store.
pub fn quote_ident(name: &str) -> crate::Result<String> {
    if name.contains('\0') {
        return Err(crate::Error::invalid_input(
            "a name cannot contain a NUL character",
        ));
    }
    if name.is_empty() {
        return Err(crate::Error::invalid_input("a name cannot be empty"));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Check a database name a user chose for a new database.
pub fn check_database_name(name: &str) -> crate::Result<()> {
    if name.trim().is_empty() {
        return Err(crate::Error::invalid_input("the database name is empty"));
    }
    if name.len() > 63 {
        return Err(crate::Error::invalid_input(
            "a database name is at most 63 bytes long in PostgreSQL",
        ));
    }
    quote_ident(name).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_everything_safely() {
        assert_eq!(quote_ident("a").unwrap(), "\"a\"");
        assert_eq!(quote_ident("we\"ird; DROP").unwrap(), "\"we\"\"ird; DROP\"");
        assert_eq!(quote_ident("Ünïcode space").unwrap(), "\"Ünïcode space\"");
        assert!(quote_ident("a\0b").is_err());
        assert!(quote_ident("").is_err());
        assert!(check_database_name(&"x".repeat(64)).is_err());
    }
}
