//! The headers of a relayed Tencent request, found by name in any case.

use crate::proto::HttpHeader;

/// Headers of a relayed request, found by lowercase name.
#[derive(Debug)]
pub struct Headers<'a>(&'a [HttpHeader]);

impl<'a> Headers<'a> {
    pub fn new(headers: &'a [HttpHeader]) -> Headers<'a> {
        Headers(headers)
    }

    /// How many times header `name` (any case) was sent.
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// The value of header `name` (any case), trimmed; `None` when absent. The first, if it
    /// was sent more than once (the authenticator refuses repeats of what it reads).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim())
    }
}
