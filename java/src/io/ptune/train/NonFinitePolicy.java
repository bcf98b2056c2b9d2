package io.ptune.train;

/** What training does when a loss or a gradient norm is NaN or infinite. */
public enum NonFinitePolicy {
    /** Stop with a {@link io.ptune.TrainingDivergedException} (the default). */
    STOP,
    /**
     * Drop that accumulation cycle (no optimizer step; the prompt and AdamW moments stay as they
     * were), count it in the metrics, go on with the next batches; stop after
     * {@link TrainingConfig#maxNonFinite()} dropped cycles in a row.
     */
    SKIP
}
