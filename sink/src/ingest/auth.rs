//! Bearer-token check of report posts, in constant time per configured token.
//!
//! Owns the comparison only; what a failure answers is the handler's business.

use subtle::ConstantTimeEq;

/// The accepted ingest tokens.
pub struct TokenCheck {
    tokens: Vec<Vec<u8>>,
}

impl TokenCheck {
    pub fn new(tokens: &[String]) -> TokenCheck {
        TokenCheck {
            tokens: tokens.iter().map(|t| t.as_bytes().to_vec()).collect(),
        }
    }

    /// No tokens configured: every post is accepted.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether an `Authorization` header value carries an accepted bearer token. Every token is
    /// compared (no early exit) so timing does not reveal which one matched or how much.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(presented) = authorization.and_then(|v| {
            let scheme = v.get(..7)?;
            scheme.eq_ignore_ascii_case(b"bearer ").then(|| &v[7..])
        }) else {
            return false;
        };
        let mut matched = subtle::Choice::from(0u8);
        for token in &self.tokens {
            matched |= token.as_slice().ct_eq(presented);
        }
        matched.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_bearer_tokens() {
        let check = TokenCheck::new(&["alpha".into(), "beta".into()]);
        assert!(check.allows(Some(b"Bearer beta")));
        assert!(check.allows(Some(b"bearer alpha")));
        assert!(!check.allows(Some(b"Bearer gamma")));
        assert!(!check.allows(Some(b"Bearer alph")));
        assert!(!check.allows(Some(b"Basic YWxwaGE=")));
        assert!(!check.allows(None));
        assert!(TokenCheck::new(&[]).allows(None));
    }
}
