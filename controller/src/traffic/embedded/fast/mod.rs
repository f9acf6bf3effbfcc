//! The fast path of the embedded server's UDP answers: the queries that
//! make up nearly all of its traffic (a weighted name's own type, another
//! type of it, the SOA, NXDOMAIN) answered from pre-encoded wire data with
//! no allocation and no parsing beyond the question. Everything else is
//! left to hickory (see [`super::slow`]); a test battery holds the two to
//! the same answers.

pub mod answers;
pub mod facts;
pub mod query;

pub use answers::{Answers, MAX_RESPONSE, Reply};
pub use facts::ZoneFacts;
