package io.ptune.classify;

import io.ptune.InvalidConfigException;
import java.util.List;
import java.util.Objects;

/**
 * The training loss of a classifier, on its class scores (softmax over the classes).
 *
 * <ul>
 *   <li>Cross-entropy, as torch's {@code cross_entropy}: with {@code labelSmoothing} ε the target
 *       is (1−ε) on the label plus ε/K on every class; with {@code classWeights} w example i counts
 *       w<sub>y<sub>i</sub></sub> (the smoothing term is weighted per class too).
 *   <li>Focal loss (Lin et al. 2017, multi-class softmax form): −α<sub>y</sub>(1−p<sub>y</sub>)<sup>γ</sup>
 *       log p<sub>y</sub>, with α = {@code classWeights} (1 when absent). γ = 0 is cross-entropy.
 * </ul>
 *
 * <p>The mean over a batch is Σ loss<sub>i</sub> / Σ w<sub>y<sub>i</sub></sub> (torch's weighted
 * mean; the plain mean over examples when all weights are 1), so with per-class α the loss does
 * not shrink just because the batch is full of down-weighted classes. With gradient accumulation
 * the micro-batches are weighed by their Σ w (TrainingConfig's lossAveraging TOKENS) or equally
 * (MICRO_BATCHES).
 *
 * @param kind cross-entropy or focal
 * @param focalGamma the focusing parameter γ >= 0 (focal only)
 * @param classWeights one positive weight per class in label order (focal α, or cross-entropy's
 *     weight), or null for 1
 * @param labelSmoothing ε in [0, 1) (cross-entropy only)
 */
public record ClassLoss(Kind kind, double focalGamma, List<Double> classWeights, double labelSmoothing) {
    /** The loss functions. */
    public enum Kind {
        CROSS_ENTROPY,
        FOCAL
    }

    /** Plain cross-entropy. */
    public static final ClassLoss CROSS_ENTROPY = new ClassLoss(Kind.CROSS_ENTROPY, 0, null, 0);

    public ClassLoss {
        Objects.requireNonNull(kind, "kind");
        if (!(focalGamma >= 0) || !Double.isFinite(focalGamma)) {
            throw new InvalidConfigException("focalGamma", "must be >= 0, got " + focalGamma);
        }
        if (kind != Kind.FOCAL && focalGamma != 0) {
            throw new InvalidConfigException("focalGamma", "is a focal-loss setting; use the focal loss (--loss focal)");
        }
        if (!(labelSmoothing >= 0 && labelSmoothing < 1)) {
            throw new InvalidConfigException("labelSmoothing", "must lie in [0, 1), got " + labelSmoothing);
        }
        if (kind == Kind.FOCAL && labelSmoothing != 0) {
            throw new InvalidConfigException("labelSmoothing", "applies to the cross-entropy loss, not the focal"
                    + " loss; drop one of them");
        }
        if (classWeights != null) {
            classWeights = List.copyOf(classWeights);
            for (double w : classWeights) {
                if (!(w > 0) || !Double.isFinite(w)) {
                    throw new InvalidConfigException("classWeights", "every class weight must be a positive number,"
                            + " got " + classWeights);
                }
            }
        }
    }

    /** Cross-entropy with label smoothing ε. */
    public static ClassLoss crossEntropy(double labelSmoothing, List<Double> classWeights) {
        return new ClassLoss(Kind.CROSS_ENTROPY, 0, classWeights, labelSmoothing);
    }

    /** Focal loss with γ and per-class α (null for 1). */
    public static ClassLoss focal(double gamma, List<Double> alpha) {
        return new ClassLoss(Kind.FOCAL, gamma, alpha, 0);
    }

    /**
     * The class weights for {@code numClasses} classes, or null when none are set.
     *
     * @throws InvalidConfigException when their number is not {@code numClasses}
     */
    public double[] weights(int numClasses) {
        if (classWeights == null) {
            return null;
        }
        if (classWeights.size() != numClasses) {
            throw new InvalidConfigException("classWeights", "gives " + classWeights.size() + " weights for "
                    + numClasses + " classes; give one per class, in label order");
        }
        return classWeights.stream().mapToDouble(Double::doubleValue).toArray();
    }
}
