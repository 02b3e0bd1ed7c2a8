use super::*;

#[test]
fn draws_have_the_right_means() {
    let mut rng = SmallRng::seed_from_u64(7);
    let n = 20_000.0;
    for (trials, p) in [(10.0, 0.2), (1000.0, 0.3), (5000.0, 0.001)] {
        let mean = (0..20_000).map(|_| binomial(&mut rng, trials, p)).sum::<f64>() / n;
        assert!(
            (mean - trials * p).abs() < 0.03 * trials * p + 0.05,
            "{trials} {p} {mean}"
        );
    }
    let mean = (0..20_000).map(|_| poisson(&mut rng, 3.0)).sum::<f64>() / n;
    assert!((mean - 3.0).abs() < 0.1);
}

#[test]
fn a_slow_tail_raises_p99_by_the_requested_amount() {
    let Effect::SlowTail { fraction, .. } = Effect::slow_tail_for_p99(0.25, 3.0, 0.5) else {
        panic!("not a slow tail");
    };
    // About 2.6 % of requests three times slower (lognormal sigma 0.5).
    assert!((fraction - 0.026).abs() < 0.002, "{fraction}");
}

#[test]
fn a_service_has_the_latency_users_reported() {
    let traffic = Traffic::service(100.0, 0.001, BucketLayout::Fine);
    let p99 = traffic.latency_median * (Z_99 * traffic.latency_sigma).exp();
    assert!((p99 - 0.080).abs() < 1e-9, "{p99}");
    let istio = BucketLayout::Istio.edges();
    assert_eq!((istio[0], istio[istio.len() - 1]), (0.0005, 3600.0));
    for layout in BucketLayout::ALL {
        assert!(layout.edges().windows(2).all(|w| w[0] < w[1]), "{layout:?}");
    }
}

#[test]
fn an_error_regression_is_the_larger_of_ratio_and_increase() {
    let rate = |base: f64| {
        let traffic = Traffic {
            error_rate: base,
            diurnal: Diurnal::flat(),
            edges: Vec::new(),
            ..Traffic::default()
        };
        let effect = Effect::Errors {
            ratio: 2.0,
            increase: 0.005,
        };
        Simulation::new(traffic, effect, 1)
            .advance(1.0, 0.5)
            .error_probability
            .canary
    };
    assert!((rate(0.0) - 0.005).abs() < 1e-12);
    assert!((rate(0.001) - 0.006).abs() < 1e-12);
    assert!((rate(0.01) - 0.02).abs() < 1e-12);
}

#[test]
fn a_same_size_baseline_takes_the_canary_share() {
    let traffic = Traffic {
        edges: Vec::new(),
        diurnal: Diurnal::flat(),
        ..Traffic::default()
    };
    let mut sim = Simulation::new(traffic, Effect::None, 3);
    let shares = Arms {
        stable: 0.25,
        canary: 0.25,
    };
    let served = (0..100).map(|_| sim.advance_shares(15.0, shares).requests);
    let (stable, canary) = served.fold((0.0, 0.0), |(b, c), r| (b + r.stable, c + r.canary));
    // 100 req/s for 1500 s, a quarter each: 37,500 ± 200.
    assert!(
        (stable - 37_500.0).abs() < 1000.0 && (canary - 37_500.0).abs() < 1000.0,
        "{stable} {canary}"
    );
}

#[test]
fn counters_are_cumulative_and_consistent() {
    let mut sim = Simulation::new(Traffic::default(), Effect::None, 1);
    let mut windows = Arms::<Counts>::default();
    let mut previous = *sim.cumulative().0;
    for _ in 0..40 {
        let window = sim.advance(15.0, 0.1);
        windows.stable.requests += window.requests.stable;
        windows.canary.requests += window.requests.canary;
        windows.stable.errors += window.errors.stable;
        windows.canary.errors += window.errors.canary;
        let now = *sim.cumulative().0;
        assert!(now.canary.requests >= previous.canary.requests && now.stable.requests >= previous.stable.requests);
        assert!(now.canary.errors <= now.canary.requests && now.stable.errors <= now.stable.requests);
        previous = now;
    }
    let (counts, histograms) = sim.cumulative();
    // The cumulative counters are the sum of the windows that were drawn.
    assert_eq!(counts.canary.requests, windows.canary.requests);
    assert_eq!(counts.canary.errors, windows.canary.errors);
    assert_eq!(counts.stable.requests, windows.stable.requests);
    assert_eq!(counts.stable.errors, windows.stable.errors);
    assert!(
        windows.stable.errors > 0.0 && windows.canary.errors > 0.0,
        "errors were drawn: {windows:?}"
    );
    assert_eq!(
        (histograms.stable.count, histograms.canary.count),
        (counts.stable.requests, counts.canary.requests)
    );
    // The canary gets its share of the traffic, 10 %.
    let share = counts.canary.requests / (counts.canary.requests + counts.stable.requests);
    assert!((share - 0.1).abs() < 0.01, "canary share {share}");
    // Every bucket is cumulative and no bucket holds more than all requests.
    for histogram in [&histograms.stable, &histograms.canary] {
        assert!(histogram.is_valid());
        let counts: Vec<f64> = histogram.buckets.iter().map(|b| b.count).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert!(counts.last().is_none_or(|last| *last <= histogram.count));
    }
}
