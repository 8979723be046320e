//! The gateway endpoint a request came in on: part of who is calling, since access control
//! admits requests by their endpoint as well as their AAP ([`crate::access::endpoint`]
//! decides which endpoints answer).

/// An endpoint a gateway reports a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Private,
    Internet,
}

impl EndpointKind {
    /// Parses the relayed name; empty and "instance" (older gateways) mean private.
    pub fn parse(name: &str) -> Option<EndpointKind> {
        match name {
            "" | "instance" | "private" => Some(EndpointKind::Private),
            "internet" => Some(EndpointKind::Internet),
            _ => None,
        }
    }

    /// The name a gateway relays (and logs show).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Private => "private",
            EndpointKind::Internet => "internet",
        }
    }
}

impl std::fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
