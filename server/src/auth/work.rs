//! A request's unit of work: [`App::write_as`] and [`App::read_as`] run the session check of the
//! caller's bearer token and the work itself on one pooled connection, in one hand-off to the
//! blocking pool (and, for writes, one transaction). Defined here, beside the extractors that
//! produce the [`super::extract::Bearer`], so that the application state itself knows nothing
//! of requests.

use crate::app::App;

impl App {
    /// One unit of work for a request that writes: one pooled connection and one hand-off to the
    /// blocking pool run the session check of `access` and `work`, in one write transaction. A
    /// refusal (the session's 401 or 403, or `work`'s own) rolls everything back.
    pub async fn write_as<T, F>(
        &self,
        access: impl Into<super::extract::Bearer>,
        work: F,
    ) -> crate::error::ApiResult<T>
    where
        F: FnOnce(
                &mut crate::db::DbConnection,
                &super::extract::Caller,
            ) -> crate::error::Outcome<T>
            + Send
            + 'static,
        T: Send + 'static,
    {
        Ok(self
            .db
            .write_or_refuse(super::extract::as_caller(access.into(), work))
            .await??)
    }

    /// Like [`App::write_as`] for a request that only reads: no transaction, so on SQLite it never
    /// waits for the writer's lock. An audit row it writes is its own short statement, written
    /// before the answer is given.
    pub async fn read_as<T, F>(
        &self,
        access: impl Into<super::extract::Bearer>,
        work: F,
    ) -> crate::error::ApiResult<T>
    where
        F: FnOnce(
                &mut crate::db::DbConnection,
                &super::extract::Caller,
            ) -> crate::error::Outcome<T>
            + Send
            + 'static,
        T: Send + 'static,
    {
        Ok(self
            .db
            .run_or_refuse(super::extract::as_caller(access.into(), work))
            .await??)
    }
}
