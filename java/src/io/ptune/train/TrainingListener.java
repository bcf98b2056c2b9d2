package io.ptune.train;

import java.util.Map;

/** Receives every optimizer step of a {@link Trainer}, and every dev evaluation, on the training thread. */
@FunctionalInterface
public interface TrainingListener {
    void onStep(StepMetrics metrics);

    /**
     * A dev evaluation after optimizer step {@code step}: metric key ({@link DevMetric#devKey()}:
     * {@code dev_loss}, and for classification {@code dev_accuracy}, {@code dev_macro_f1}) to value.
     * Ignored by default.
     */
    default void onDev(long step, Map<String, Double> metrics) {}
}
