package io.ptune.train;

/** How the learning rate moves after the linear warm-up. */
public enum LrSchedule {
    /** Stays at the peak learning rate. */
    CONSTANT,
    /** Falls linearly from the peak to 0 at the last step (Hugging Face's default). */
    LINEAR,
    /** Follows half a cosine from the peak to 0 at the last step. */
    COSINE
}
