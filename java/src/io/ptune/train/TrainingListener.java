package io.ptune.train;

/** Receives every optimizer step of a {@link Trainer}, on the training thread. */
@FunctionalInterface
public interface TrainingListener {
    void onStep(StepMetrics metrics);
}
