package io.ptune.train;

/** How gradient accumulation weighs the micro-batches of one optimizer step. */
public enum LossAveraging {
    /**
     * The mean loss over every label token of the step's micro-batches, so accumulating k
     * micro-batches equals one k-times larger batch (transformers' Trainer, which divides by
     * {@code num_items_in_batch}). The default.
     */
    TOKENS,
    /**
     * The mean of the micro-batches' own mean losses (the plain PEFT training loop's
     * {@code loss / gradient_accumulation_steps}); a short micro-batch weighs as much as a long one.
     */
    MICRO_BATCHES
}
