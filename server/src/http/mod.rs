//! HTTP plumbing shared by every domain: input extractors that answer in our error format,
//! list pagination, rate limiting, the middleware stack, and how connections are accepted.

pub mod extract;
pub mod middleware;
pub mod outbound;
pub mod pagination;
pub mod rate_limit;
pub mod serve;
