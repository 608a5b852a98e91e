"""Landmark fit of the ICT head to detected 2D landmarks (GAR eq. 12), by Levenberg-Marquardt.

Minimises, over rotation R, translation t, focal f, identity alpha and expression beta in [0,1],

    sum_i rho( w_i || pi_f(R P_i(alpha, beta) + t) - l_i ||^2 / (sigma d)^2 )
        + ||alpha / sigma_alpha||^2 + ||beta / sigma_beta||^2 + ((log f - log f0) / sigma_f)^2

where P_i are model surface points (68-point set: fixed points for brows/eyes/nose/mouth, the
jaw re-assigned to the current silhouette each iteration, see :mod:`faceeditor.fit.contour`;
optionally the dense mediapipe correspondences), ``d`` the face scale (outer-eye distance),
``rho`` a Huber loss that down-weights occluded/outlier points (IRLS), and pi_f the pinhole
projection of :mod:`faceeditor.render.camera`. Jacobians are analytic (the model is linear in
alpha, beta), so ~15 iterations take a few tens of milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from faceeditor.fit.blas import single_thread_blas
from faceeditor.fit.contour import ContourTracker, contour_candidates
from faceeditor.fit.points import ModelSlices, SurfacePoints
from faceeditor.morphable.model import FaceModel

EYE_DISTANCE_CM = 8.92  # ICT outer eye corners (68-set 36-45)
EYES_TO_ORIGIN_CM = 9.0  # the model origin sits ~9 cm behind the eye corners


@dataclass
class LandmarkFitConfig:
    """Weights and schedule of the landmark fit (values measured on afw68; see the fit benchmark)."""

    n_identity: int = 100
    iterations: int = 14
    rigid_iterations: int = 5
    sigma_landmark: float = 0.015  # expected landmark noise, fraction of the eye distance
    sigma_identity: float = 1.0  # identity coefficients ~ N(0, 1)
    sigma_expression: float = 0.6
    strong_priors: dict[str, float] = field(default_factory=lambda: {
        "cheekPuff_L": 0.05, "cheekPuff_R": 0.05, "eyeLookDown_L": 0.15, "eyeLookDown_R": 0.15,
        "eyeLookUp_L": 0.15, "eyeLookUp_R": 0.15, "eyeLookIn_L": 0.15, "eyeLookIn_R": 0.15,
        "eyeLookOut_L": 0.15, "eyeLookOut_R": 0.15, "jawForward": 0.15, "mouthRollLower": 0.2,
        "mouthRollUpper": 0.2})
    focal_factor: float = 1.5  # prior focal = focal_factor * max(w, h)
    sigma_log_focal: float = 0.5
    jaw_weight: float = 0.5
    use_dense: bool = True
    dense_weight: float = 0.25  # per dense point, relative to a 68-set point
    huber: float = 2.5  # in units of sigma_landmark
    pose_correction: bool = True  # remove the detector's pose-dependent bias (landmark map)
    depth_weight: float = 0.0  # mediapipe's relative depth of the dense points (0 = off)
    fixed_focal: float | None = None


@dataclass
class LandmarkFit:
    rotation: np.ndarray  # (3,3)
    translation: np.ndarray  # (3,)
    focal: float
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (53,)
    fitted68: np.ndarray  # (68,2) projected model points (jaw on the silhouette)
    jaw_vertices: np.ndarray  # (17,) vertex ids carrying the jaw outline at the end
    rms_px: float
    iterations: int
    ms: float


def _rodrigues(w: np.ndarray) -> np.ndarray:
    th = float(np.linalg.norm(w))
    if th < 1e-12:
        return np.eye(3)
    k = w / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


def _euler_deg(R: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of ``R = R_y(yaw) R_x(-pitch) R_z(-roll)`` (faceeditor.morphable.pose)."""
    pitch = np.arcsin(np.clip(R[1, 2], -1.0, 1.0))
    yaw = np.arctan2(R[0, 2], R[2, 2])
    roll = -np.arctan2(R[1, 0], R[1, 1])
    return np.degrees(np.array([yaw, pitch, roll]))


def _skew(a: np.ndarray) -> np.ndarray:
    """(N,3) -> (N,3,3) cross-product matrices [a]_x."""
    z = np.zeros(len(a))
    return np.stack([np.stack([z, -a[:, 2], a[:, 1]], 1), np.stack([a[:, 2], z, -a[:, 0]], 1),
                     np.stack([-a[:, 1], a[:, 0], z], 1)], 1)


@dataclass
class FitInit:
    """A starting point for the landmark fit: rotation (3,3), identity (>= n_identity) and
    expression (53) coefficients, e.g. from FR."""

    rotation: np.ndarray
    identity: np.ndarray
    expression: np.ndarray


class LandmarkFitter:
    """Reusable fitter for one model (holds the sliced bases and the prior weights)."""

    def __init__(self, model: FaceModel, config: LandmarkFitConfig | None = None) -> None:
        single_thread_blas()
        self.model = model
        self.cfg = config or LandmarkFitConfig()
        self.slices = ModelSlices(model, self.cfg.n_identity)
        self.tracker = ContourTracker(contour_candidates(model), self.slices)
        lm = model.landmarks68.cpu().numpy()
        if model.lm68_face is not None:
            self.inner = SurfacePoints.from_triangles(model, model.lm68_face.cpu().numpy(), model.lm68_bary.cpu().numpy())
        else:
            self.inner = SurfacePoints.from_vertices(lm[17:])
        self.jaw_fixed = lm[:17].copy()
        self.dense = None
        if model.mp478_face is not None:
            self.dense = SurfacePoints.from_triangles(model, model.mp478_face.cpu().numpy(),
                                                      model.mp478_bary.cpu().numpy())
            w = model.mp478_weight
            self.dense_w = np.ones(len(self.dense)) if w is None else w.cpu().numpy().astype(np.float64)
        pc = getattr(model, "lm68_pose_corr", None)
        self.inner_corr = None if pc is None else pc.cpu().numpy().astype(np.float64)
        pc = getattr(model, "mp478_pose_corr", None)
        self.dense_corr = None if pc is None else pc.cpu().numpy().astype(np.float64)
        if self.dense_corr is None:
            self.inner_corr = None
        K = self.slices.n_coeffs
        prior = np.empty(K)
        prior[: self.cfg.n_identity] = 1.0 / self.cfg.sigma_identity
        prior[self.cfg.n_identity:] = 1.0 / self.cfg.sigma_expression
        for name, s in self.cfg.strong_priors.items():
            prior[self.cfg.n_identity + model.expression_index(name)] = 1.0 / s
        self.prior = prior

    # ----------------------------------------------------------------------------------------
    def fit(self, landmarks68: np.ndarray, image_size: tuple[int, int], dense478: np.ndarray | None = None,
            principal: tuple[float, float] | None = None, init: FitInit | None = None) -> LandmarkFit:
        """Fit to detector points: ``landmarks68`` (68,2) and optionally mediapipe ``dense478`` (478,2+).

        ``init`` starts from a rotation and coefficients (FR's regression,
        :func:`faceeditor.neural.regressor.regress_photo`) instead of a frontal neutral mean face; the
        translation is then placed from the eye distance as for the frontal start."""
        t0 = time.perf_counter()
        cfg = self.cfg
        w, h = image_size
        cx, cy = principal if principal is not None else (w / 2.0, h / 2.0)
        l68 = np.asarray(landmarks68, dtype=np.float64)
        d = max(float(np.linalg.norm(l68[45] - l68[36])), 0.25 * float(np.ptp(l68[:, 0]) + np.ptp(l68[:, 1])) / 2)
        f0 = cfg.fixed_focal or cfg.focal_factor * max(w, h)
        use_dense = cfg.use_dense and self.dense is not None and dense478 is not None
        inner_b = self.slices.point_basis(self.inner)
        dense_b = self.slices.point_basis(self.dense) if use_dense else None
        K = self.slices.n_coeffs
        nI = cfg.n_identity

        # initial pose: frontal (or init's), at the depth where the model's eye distance matches the photo's
        R = np.eye(3) if init is None else np.asarray(init.rotation, np.float64).reshape(3, 3)
        c = np.zeros(K)
        if init is not None:
            c[:nI] = np.asarray(init.identity, np.float64)[:nI]
            c[nI:] = np.clip(np.asarray(init.expression, np.float64), 0.0, 1.0)
        z_eyes = f0 * EYE_DISTANCE_CM / max(d, 1.0)
        ctr = l68[17:].mean(0)
        model_ctr = R @ (inner_b.mean + inner_b.basis @ c).mean(0)  # frontal start: the mean face's centre
        t = np.array([(ctr[0] - cx) * z_eyes / f0 - model_ctr[0], -(ctr[1] - cy) * z_eyes / f0 - model_ctr[1],
                      -(z_eyes + EYES_TO_ORIGIN_CM)])
        logf = np.log(f0)
        jaw_ids = self.jaw_fixed.copy()

        def project(pc: np.ndarray, f: float) -> np.ndarray:
            zp = np.maximum(-pc[:, 2], 1e-3)
            return np.stack([cx + f * pc[:, 0] / zp, cy - f * pc[:, 1] / zp], 1)

        scale = 1.0 / (cfg.sigma_landmark * d)
        targets = [l68[17:]]
        weights = [np.ones(51)]
        if use_dense:
            targets.append(np.asarray(dense478, dtype=np.float64)[:, :2])
            weights.append(cfg.dense_weight * self.dense_w)
        targets.append(l68[:17])
        weights.append(np.full(17, cfg.jaw_weight))
        obs = np.concatenate(targets)
        wts = np.sqrt(np.concatenate(weights))
        # pose-dependent detector bias (learned on renders with known pose): obs - d * C [pose/30, 1]
        corr = np.concatenate([self.inner_corr] + ([self.dense_corr] if use_dense else [])
                              + [np.zeros((17, 2, 4))]) if cfg.pose_correction and self.inner_corr is not None else None

        static = [inner_b] + ([dense_b] if use_dense else [])
        static_mean = np.concatenate([p.mean for p in static])
        static_basis = np.concatenate([p.basis for p in static])
        tracker = self.tracker
        tracker.normals = None

        def points(c, jaw_ids):
            jm, jb = self.slices.vertex_basis(jaw_ids)
            mean = np.concatenate([static_mean, jm])
            basis = np.concatenate([static_basis, jb])
            return mean + basis @ c, basis

        # relative depth of the dense points (mediapipe's z, pixel units up to a scale): a third
        # residual row per dense point, d_i = f (z'_i - mean z') / mean z' vs s * z_mp,i (s solved)
        use_depth = use_dense and cfg.depth_weight > 0 and np.asarray(dense478).shape[1] > 2
        if use_depth:
            dsl = slice(51, 51 + len(self.dense))
            zobs = np.asarray(dense478, dtype=np.float64)[:, 2]
            zobs = zobs - zobs.mean()
            zw = cfg.depth_weight * np.sqrt(self.dense_w)

        def depth_rows(pc: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
            zd = -pc[dsl, 2]
            mz = zd.mean()
            pred = f * (zd - mz) / mz
            sz = float(pred @ zobs) / max(float(zobs @ zobs), 1e-9)
            return (pred - sz * zobs) * zw, -f / mz * zw

        def residual(R, t, logf, c, jaw_ids, obs):
            P, _ = points(c, jaw_ids)
            pc = P @ R.T + t
            res = np.zeros((len(pc), 3))
            res[:, :2] = project(pc, np.exp(logf)) - obs
            if use_depth:
                res[dsl, 2] = depth_rows(pc, np.exp(logf))[0]
            return res * scale

        def jacobian(R, t, logf, c, jaw_ids, obs, rigid: bool):
            P, basis = points(c, jaw_ids)
            RP = P @ R.T
            pc = RP + t
            f = np.exp(logf)
            uv = project(pc, f)
            zp = np.maximum(-pc[:, 2], 1e-3)
            Jp = np.zeros((len(pc), 3, 3))
            Jp[:, 0, 0] = f / zp
            Jp[:, 0, 2] = f * pc[:, 0] / zp ** 2
            Jp[:, 1, 1] = -f / zp
            Jp[:, 1, 2] = -f * pc[:, 1] / zp ** 2
            res = np.zeros((len(pc), 3))
            res[:, :2] = uv - obs
            df = np.zeros((len(pc), 3, 1))
            df[:, :2, 0] = uv - np.array([cx, cy])
            if use_depth:
                res[dsl, 2], Jp[dsl, 2, 2] = depth_rows(pc, f)
                df[dsl, 2, 0] = res[dsl, 2]
            cols = [-Jp @ _skew(RP), Jp, df]  # rotation, t, log f
            if not rigid:  # d(pc)/dc = R basis; contract with Jp row by row (fast for small 3x3 blocks)
                A = Jp @ R  # (N,3,3)
                Jc = np.empty((len(pc), 3, basis.shape[2]))
                for r in range(3):
                    Jc[:, r] = (A[:, r, 0, None] * basis[:, 0] + A[:, r, 1, None] * basis[:, 1]
                                + A[:, r, 2, None] * basis[:, 2])
                cols.append(Jc)
            return res * scale, np.concatenate(cols, 2) * scale

        def assign(c, R, t, logf):
            return tracker.assign(c, R, t, lambda p: project(p, np.exp(logf)), l68[:17], self.jaw_fixed)

        obs_it = obs.copy()

        it_done = 0
        mu = 1e-3
        n_iter = cfg.rigid_iterations + cfg.iterations
        step = np.zeros(1)
        for it in range(n_iter):
            rigid = it < cfg.rigid_iterations
            if it >= cfg.rigid_iterations - 1:
                if (it - cfg.rigid_iterations) % 4 == 3:
                    tracker.update_normals(c)
                jaw_ids, slid, _ = assign(c, R, t, logf)
                if corr is not None:
                    obs_it = obs - d * (corr @ np.append(_euler_deg(R) / 30.0, 1.0))
                obs_it[-17:] = slid
            res, J = jacobian(R, t, logf, c, jaw_ids, obs_it, rigid)
            # IRLS Huber weights per point on the normalised 2D residual
            nrm = np.linalg.norm(res[:, :2], axis=1)
            rw = np.where(nrm <= cfg.huber, 1.0, cfg.huber / np.maximum(nrm, 1e-12))
            ww = (wts * np.sqrt(rw))[:, None]
            r = (res * ww).reshape(-1)
            Jw = (J * ww[:, :, None]).reshape(len(r), -1)
            npar = Jw.shape[1]
            H = Jw.T @ Jw
            g = Jw.T @ r
            # priors: log focal (index 6), and the coefficients when they are solved
            if cfg.fixed_focal:
                H[6, 6] += 1e12
            else:
                H[6, 6] += cfg.sigma_log_focal ** -2
                g[6] += (logf - np.log(f0)) * cfg.sigma_log_focal ** -2
            if not rigid:
                H[7:, 7:] += np.diag(self.prior ** 2)
                g[7:] += self.prior ** 2 * c
            free = np.ones(npar, dtype=bool)
            if not rigid:  # expressions at a bound whose gradient pushes outward stay put
                b, ge = c[nI:], g[7 + nI:]
                free[7 + nI:] = ~(((b <= 0) & (ge > 0)) | ((b >= 1) & (ge < 0)))

            def cost(res_, logf_, c_) -> float:
                rr = (res_ * ww).reshape(-1)
                val = float(rr @ rr) + ((logf_ - np.log(f0)) / cfg.sigma_log_focal) ** 2
                return val + (float(((self.prior * c_) ** 2).sum()) if not rigid else 0.0)

            cost0 = cost(res, logf, c)
            Hf, gf = H[np.ix_(free, free)], g[free]
            for _ in range(4):
                step = np.zeros(npar)
                step[free] = np.linalg.solve(Hf + mu * np.diag(np.diag(Hf) + 1e-9), -gf)
                R1 = _rodrigues(step[:3]) @ R
                t1 = t + step[3:6]
                logf1 = logf + (0.0 if cfg.fixed_focal else step[6])
                c1 = c.copy()
                if not rigid:
                    c1 += step[7:]
                    c1[nI:] = np.clip(c1[nI:], 0.0, 1.0)
                if cost(residual(R1, t1, logf1, c1, jaw_ids, obs_it), logf1, c1) < cost0:
                    R, t, logf, c = R1, t1, logf1, c1
                    mu = max(mu / 3.0, 1e-7)
                    break
                mu *= 4.0
            it_done = it + 1
            if not rigid and np.abs(step).max() < 1e-5:
                break
        # final 68 projection (jaw on the silhouette)
        tracker.update_normals(c)
        final_jaw, _, jaw_uv = assign(c, R, t, logf)
        fitted68 = np.concatenate([jaw_uv, project(inner_b.evaluate(c) @ R.T + t, np.exp(logf))])
        rms = float(np.sqrt(((fitted68[17:] - l68[17:]) ** 2).sum(1).mean()))
        identity = np.zeros(self.model.n_identity)
        identity[:nI] = c[:nI]
        return LandmarkFit(R, t, float(np.exp(logf)), identity, c[nI:].copy(), fitted68, final_jaw, rms, it_done,
                           (time.perf_counter() - t0) * 1000.0)
