//! RSS and descriptor samples of the proxy, and the trend: a least-squares slope over the
//! samples after the warm-up, in MB per hour.

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t: f64,
    pub rss_mb: f64,
    pub fds: usize,
    pub requests: u64,
}

/// Least-squares slope of `y` over `x`; `None` with fewer than 3 points or no spread in `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// RSS slope in MB/hour over the samples taken at or after `warm_up` seconds.
pub fn rss_mb_per_hour(samples: &[Sample], warm_up: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t >= warm_up)
        .map(|s| (s.t / 3600.0, s.rss_mb))
        .collect();
    slope(&points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_its_gradient() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 + 2.0 * i as f64)).collect();
        assert!((slope(&points).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope(&points[..2]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn warm_up_samples_are_left_out() {
        let mut samples: Vec<Sample> = (0..4)
            .map(|i| Sample {
                t: i as f64,
                rss_mb: 100.0 * i as f64,
                fds: 10,
                requests: 0,
            })
            .collect();
        samples.extend((0..5).map(|i| Sample {
            t: 3600.0 + 3600.0 * i as f64,
            rss_mb: 50.0 + i as f64,
            fds: 10,
            requests: 0,
        }));
        assert!((rss_mb_per_hour(&samples, 3600.0).unwrap() - 1.0).abs() < 1e-9);
    }
}
