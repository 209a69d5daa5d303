//! HTTP plumbing shared by every domain: input extractors that answer in our error format,
//! list pagination, rate limiting and the middleware stack.

pub mod extract;
pub mod middleware;
pub mod pagination;
pub mod rate_limit;
