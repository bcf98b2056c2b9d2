package io.ptune.prompt;

/**
 * How the soft prompt starts, before training (PEFT's {@code PromptTuningInit} plus {@code LABELS}).
 */
public enum PromptInit {
    /** Independent N(0, 1) values, as PEFT's default {@code nn.Embedding} initialisation. */
    RANDOM,
    /** Embeddings of token ids drawn uniformly from the vocabulary. */
    SAMPLE_VOCAB,
    /** Embeddings of a tokenised text, repeated or trimmed to the number of virtual tokens. */
    TEXT,
    /**
     * Per class, the mean embedding of its label words; virtual token i starts as class i mod k.
     * PEFT has no equivalent; adapters record it as RANDOM.
     */
    LABELS
}
