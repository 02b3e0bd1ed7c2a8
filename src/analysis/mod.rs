//! Metric providers, query templating and the judges that turn metrics into verdicts.

mod verdict;

pub use verdict::Verdict;
