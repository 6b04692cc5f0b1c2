//! Why a request was not authenticated: the reasons every token source (static key, JWKS,
//! tickets) reports, and their stable codes.

/// Why a request was not authenticated. The variants become the `error_description` of the
/// `WWW-Authenticate` header and the JSON error, so a client can tell what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send Authorization: Bearer, an access_token query parameter or the auth cookie")]
    Missing,
    #[error("the Authorization header is not \"Bearer <token>\"")]
    MalformedHeader,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's audience is not accepted")]
    Audience,
    #[error("the token's issuer is not accepted")]
    Issuer,
    #[error("the token lacks a required claim or has one of the wrong type")]
    Claims,
    #[error("the token grants personal topics ({{sub}}) and its sub is missing or not one topic segment")]
    Subject,
    #[error("the token's key (kid) is not in the identity provider's key set")]
    UnknownKey,
    #[error("the token, or its subject, is revoked")]
    Revoked,
    /// Answered with 503, not 401: the token may be good, the gateway cannot tell yet.
    #[error("the identity provider's keys could not be fetched yet; try again")]
    KeysUnavailable,
    // Stream tickets (`tickets.rs`): the message names the code too, for clients that only show it.
    #[error("ticket_malformed: this is not a ticket; get one with POST /tickets")]
    TicketMalformed,
    #[error("ticket_foreign: the ticket was issued by another deployment")]
    TicketForeign,
    #[error("ticket_expired: the ticket has expired; get a new one with POST /tickets")]
    TicketExpired,
    #[error("ticket_unknown: no such ticket")]
    TicketUnknown,
    #[error("ticket_used: the ticket was already used; get a new one with POST /tickets")]
    TicketUsed,
}

impl AuthError {
    /// A stable label for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MalformedHeader => "malformed_header",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Audience => "audience",
            Self::Issuer => "issuer",
            Self::Claims => "claims",
            Self::Subject => "subject",
            Self::UnknownKey => "unknown_key",
            Self::Revoked => "revoked",
            Self::KeysUnavailable => "keys_unavailable",
            Self::TicketMalformed => "ticket_malformed",
            Self::TicketForeign => "ticket_foreign",
            Self::TicketExpired => "ticket_expired",
            Self::TicketUnknown => "ticket_unknown",
            Self::TicketUsed => "ticket_used",
        }
    }
}
