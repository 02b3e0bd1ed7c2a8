//! Errors of the controller shell; each carries the label used in metrics and
//! as the reason of the Warning Event it raises.

use crate::routing::RoutingError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the Rollout has no namespace")]
    MissingNamespace,
    #[error("the pod template of {what} cannot be used: {message}")]
    Template { what: String, message: String },
    #[error("the reconcile did not finish within {}s; it is retried, and every other Rollout carries on", .0.as_secs())]
    Deadline(std::time::Duration),
    #[error("internal error while reconciling ({0}); retried in a minute, every other Rollout carries on")]
    Panicked(String),
    #[error("the controller has not yet listed its Deployments and Services; retrying")]
    CacheNotReady,
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

impl Error {
    /// Whether a write was refused by this replica's write fence: its hold
    /// on the Lease is not confirmed, so it must not act.
    pub fn is_fenced(&self) -> bool {
        super::fence::is_fenced(self)
    }

    /// A short snake_case label for metrics.
    pub fn metric_label(&self) -> &'static str {
        if self.is_fenced() {
            return "fenced";
        }
        match self {
            Error::Kube(_) => "kube_api",
            Error::Routing(e) => e.metric_label(),
            Error::Finalizer(_) => "finalizer",
            Error::MissingNamespace => "missing_namespace",
            Error::Template { .. } => "invalid_template",
            Error::Deadline(_) => "deadline",
            Error::Panicked(_) => "panic",
            Error::CacheNotReady => "cache_not_ready",
        }
    }

    /// The CamelCase reason of the Warning Event.
    pub fn event_reason(&self) -> &'static str {
        if self.is_fenced() {
            return "WriteFenced";
        }
        match self {
            Error::Routing(RoutingError::Conflict { .. }) => "RouteConflict",
            Error::Routing(_) => "RouteError",
            Error::Template { .. } => "InvalidTemplate",
            Error::Deadline(_) => "ReconcileDeadline",
            Error::Panicked(_) => "ReconcilePanicked",
            _ => "ReconcileError",
        }
    }
}
