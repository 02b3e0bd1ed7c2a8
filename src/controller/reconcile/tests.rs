use super::*;

/// The log lines written on this thread while `f` runs.
fn logged(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("no test panics holding it").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = lines.0.lock().expect("no test panics holding it").clone();
    String::from_utf8_lossy(&text).lines().map(String::from).collect()
}

fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "cart", "namespace": "shop", "generation": 3, "resourceVersion": "41"},
        "spec": {
            "replicas": 1,
            "service": {"name": "cart", "port": 80},
            "template": {"spec": {"containers": [{"name": "app", "image": "app"}]}},
            "strategy": {"canary": {"steps": [{"weight": 10}]}},
        },
    }))
    .expect("a valid Rollout")
}

#[test]
fn a_failure_is_logged_once_with_its_label_inside_the_rollouts_span() {
    let error = Error::Template {
        what: "Deployment cart".into(),
        message: "no containers".into(),
    };
    let mut requeue = None;
    let lines = logged(|| requeue = Some(failed(&rollout(), &error)));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    for part in [
        "WARN",
        "reconcile{namespace=shop name=cart generation=3 resource_version=41}",
        "label=\"invalid_template\"",
        "no containers",
    ] {
        assert!(lines[0].contains(part), "{part} in {}", lines[0]);
    }
    assert_eq!(requeue, Some(Requeue::requeue(Duration::from_secs(5))));
}

#[test]
fn a_route_conflict_is_retried_at_once_and_a_panic_in_a_minute() {
    let conflict = Error::Routing(crate::routing::RoutingError::Conflict {
        route: "HTTPRoute cart".into(),
    });
    let lines = logged(|| {
        assert_eq!(
            failed(&rollout(), &conflict),
            Requeue::requeue(Duration::from_millis(500))
        )
    });
    assert!(
        lines.len() == 1 && lines[0].contains("label=\"route_conflict\""),
        "{lines:#?}"
    );
    let panic = Error::Panicked("index out of bounds".into());
    let lines = logged(|| assert_eq!(failed(&rollout(), &panic), Requeue::requeue(PANIC_RETRY)));
    assert!(
        lines.len() == 1 && lines[0].contains("ERROR") && lines[0].contains("label=\"panic\""),
        "{lines:#?}"
    );
}

#[test]
fn the_loop_does_not_log_a_failed_reconcile_again() {
    let object = || ObjectRef::<Rollout>::new("cart").within("shop");
    let failed = ControllerError::ReconcilerFailed(Error::MissingNamespace, Box::new(object().erase()));
    assert_eq!(logged(|| log_outcome(Err(failed))), Vec::<String>::new());
    let done = logged(|| log_outcome(Ok((object(), Requeue::await_change()))));
    assert!(done.len() == 1 && done[0].contains("reconciled"), "{done:#?}");
}

#[tokio::test]
async fn a_panic_inside_a_reconcile_is_this_rollouts_error_not_the_processes() {
    let result = contained(Duration::from_secs(5), async {
        let steps: Vec<i32> = Vec::new();
        let index = steps.len() + 2;
        Ok(Requeue::requeue(Duration::from_secs(
            u64::try_from(steps[index]).unwrap_or(0),
        )))
    })
    .await;
    let Err(Error::Panicked(message)) = result else {
        panic!("a contained panic: {result:?}");
    };
    assert!(message.contains("index out of bounds"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_that_never_ends_gives_its_slot_back_at_the_deadline() {
    let result = contained(RECONCILE_DEADLINE, std::future::pending()).await;
    assert!(
        matches!(result, Err(Error::Deadline(d)) if d == RECONCILE_DEADLINE),
        "{result:?}"
    );
}
