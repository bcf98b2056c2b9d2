package io.ptune.nativebridge;

/**
 * The loss of a native classification trainer.
 *
 * @param kind cross-entropy or focal loss
 * @param focalGamma focal loss's focusing parameter (>= 0)
 * @param labelSmoothing cross-entropy's label smoothing in [0, 1)
 * @param classWeights one positive weight per class (the focal alpha / cross-entropy weight), or null
 */
public record ClassLossOptions(Kind kind, double focalGamma, double labelSmoothing, double[] classWeights) {
    /** In the order of ptune::ClassLossKind. */
    public enum Kind {
        CROSS_ENTROPY,
        FOCAL
    }

    /** Plain cross-entropy. */
    public static final ClassLossOptions CROSS_ENTROPY = new ClassLossOptions(Kind.CROSS_ENTROPY, 0, 0, null);
}
