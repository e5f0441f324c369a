//! Similarity transforms and their robust estimation (RANSAC, then a least-squares refit).

use nalgebra::{Matrix4, Vector4};

/// `p -> m p + t` on points as complex numbers: `m = a + ib` rotates by `atan2(b, a)` and scales
/// by `|m|`. Coordinates are relative to the frame centre, so rotation is about the centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Similarity {
    pub(crate) a: f64,
    pub(crate) b: f64,
    pub(crate) tx: f64,
    pub(crate) ty: f64,
}

impl Similarity {
    pub(crate) const IDENTITY: Similarity = Similarity {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// From a rotation in radians, a scale and a translation.
    pub(crate) fn from_parts(angle: f64, scale: f64, tx: f64, ty: f64) -> Similarity {
        Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    pub(crate) fn apply(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// `self` after `first`: `p -> self(first(p))`.
    pub(crate) fn compose(&self, first: &Similarity) -> Similarity {
        let (tx, ty) = self.apply((first.tx, first.ty));
        Similarity {
            a: self.a * first.a - self.b * first.b,
            b: self.a * first.b + self.b * first.a,
            tx,
            ty,
        }
    }

    pub(crate) fn inverse(&self) -> Similarity {
        let n = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / n, -self.b / n);
        Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }

    pub(crate) fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    pub(crate) fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// The same rotation and translation with the scale set to 1.
    fn rigid(&self) -> Similarity {
        let s = self.scale();
        Similarity {
            a: self.a / s,
            b: self.b / s,
            ..*self
        }
    }
}

/// A point in one frame and where it went in the next.
pub(crate) type Pair = ((f64, f64), (f64, f64));

/// A motion fitted to point pairs, with what the checks of reliability need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fit {
    pub(crate) model: Similarity,
    pub(crate) inliers: usize,
    /// Root mean square distance of the inliers from the model.
    pub(crate) rms: f64,
    /// Root mean square distance of the inliers from their centroid: how well they pin down
    /// rotation.
    pub(crate) spread: f64,
}

/// Fits a similarity to `(from, to)` pairs: RANSAC over pairs of points with a deterministic
/// sequence, then least squares over the inliers, twice. `threshold` is the inlier distance.
pub(crate) fn estimate(pairs: &[Pair], threshold: f64, estimate_scale: bool) -> Option<Fit> {
    if pairs.len() < 3 {
        return None;
    }
    let t2 = threshold * threshold;
    let count = |model: &Similarity| {
        pairs
            .iter()
            .filter(|(p, q)| dist2(model.apply(*p), *q) < t2)
            .count()
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut best = (0usize, Similarity::IDENTITY);
    for _ in 0..64 {
        let i = next(&mut rng) % pairs.len();
        let j = next(&mut rng) % pairs.len();
        let Some(model) = two_point(pairs[i], pairs[j]) else {
            continue;
        };
        if !(0.8..1.25).contains(&model.scale()) {
            continue;
        }
        let model = if estimate_scale { model } else { model.rigid() };
        let n = count(&model);
        if n > best.0 {
            best = (n, model);
        }
    }
    if best.0 < 3 {
        return None;
    }
    let mut model = best.1;
    for _ in 0..2 {
        let inliers: Vec<_> = pairs
            .iter()
            .filter(|(p, q)| dist2(model.apply(*p), *q) < t2)
            .copied()
            .collect();
        model = least_squares(&inliers, estimate_scale)?;
    }
    let inliers: Vec<_> = pairs
        .iter()
        .filter(|(p, q)| dist2(model.apply(*p), *q) < t2)
        .collect();
    let n = inliers.len().max(1) as f64;
    let rms = (inliers
        .iter()
        .map(|(p, q)| dist2(model.apply(*p), *q))
        .sum::<f64>()
        / n)
        .sqrt();
    let (cx, cy) = inliers
        .iter()
        .fold((0.0, 0.0), |(x, y), (p, _)| (x + p.0, y + p.1));
    let (cx, cy) = (cx / n, cy / n);
    let spread = (inliers
        .iter()
        .map(|(p, _)| dist2(*p, (cx, cy)))
        .sum::<f64>()
        / n)
        .sqrt();
    Some(Fit {
        model,
        inliers: inliers.len(),
        rms,
        spread,
    })
}

/// The similarity through two pairs exactly.
fn two_point((p1, q1): Pair, (p2, q2): Pair) -> Option<Similarity> {
    // m = (q1 - q2) / (p1 - p2) in complex numbers.
    let (dx, dy) = (p1.0 - p2.0, p1.1 - p2.1);
    let (ex, ey) = (q1.0 - q2.0, q1.1 - q2.1);
    let n = dx * dx + dy * dy;
    if n < 16.0 {
        return None;
    }
    let a = (ex * dx + ey * dy) / n;
    let b = (ey * dx - ex * dy) / n;
    let tx = q1.0 - (a * p1.0 - b * p1.1);
    let ty = q1.1 - (b * p1.0 + a * p1.1);
    Some(Similarity { a, b, tx, ty })
}

/// The similarity that best fits all pairs in the least-squares sense.
fn least_squares(pairs: &[Pair], estimate_scale: bool) -> Option<Similarity> {
    if pairs.len() < 2 {
        return None;
    }
    // Rows [x, -y, 1, 0] -> u and [y, x, 0, 1] -> v, through the normal equations.
    let mut ata = Matrix4::<f64>::zeros();
    let mut atb = Vector4::<f64>::zeros();
    for &((x, y), (u, v)) in pairs {
        for (row, rhs) in [
            (Vector4::new(x, -y, 1.0, 0.0), u),
            (Vector4::new(y, x, 0.0, 1.0), v),
        ] {
            ata += row * row.transpose();
            atb += row * rhs;
        }
    }
    let solution = ata.cholesky()?.solve(&atb);
    let model = Similarity {
        a: solution[0],
        b: solution[1],
        tx: solution[2],
        ty: solution[3],
    };
    if estimate_scale {
        return Some(model);
    }
    // Without scale, keep the rotation and refit the translation through the centroids.
    let rigid = model.rigid();
    let n = pairs.len() as f64;
    let (mut sp, mut sq) = ((0.0, 0.0), (0.0, 0.0));
    for &(p, q) in pairs {
        sp = (sp.0 + p.0, sp.1 + p.1);
        sq = (sq.0 + q.0, sq.1 + q.1);
    }
    let rotated = Similarity {
        tx: 0.0,
        ty: 0.0,
        ..rigid
    }
    .apply((sp.0 / n, sp.1 / n));
    Some(Similarity {
        tx: sq.0 / n - rotated.0,
        ty: sq.1 / n - rotated.1,
        ..rigid
    })
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0) * (a.0 - b.0) + (a.1 - b.1) * (a.1 - b.1)
}

/// xorshift64*: a fixed sequence, so that runs repeat exactly.
fn next(state: &mut u64) -> usize {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_inverse_agree() {
        let m = Similarity::from_parts(0.1, 1.02, 3.0, -4.0);
        let id = m.compose(&m.inverse());
        assert!((id.a - 1.0).abs() < 1e-12 && id.b.abs() < 1e-12);
        assert!(id.tx.abs() < 1e-9 && id.ty.abs() < 1e-9);
    }

    #[test]
    fn ransac_ignores_outliers() {
        let truth = Similarity::from_parts(0.02, 1.0, 5.5, -1.25);
        let mut pairs = Vec::new();
        for i in 0..60 {
            let p = (
                (i % 10) as f64 * 40.0 - 200.0,
                (i / 10) as f64 * 30.0 - 90.0,
            );
            let mut q = truth.apply(p);
            if i % 4 == 0 {
                q.0 += 17.0 + i as f64;
            }
            pairs.push((p, q));
        }
        let fit = estimate(&pairs, 1.0, false).unwrap();
        assert_eq!(fit.inliers, 45);
        assert!((fit.model.angle() - 0.02).abs() < 1e-9);
        assert!((fit.model.tx - 5.5).abs() < 1e-6 && (fit.model.ty + 1.25).abs() < 1e-6);
        assert!(fit.rms < 1e-6);
    }
}
