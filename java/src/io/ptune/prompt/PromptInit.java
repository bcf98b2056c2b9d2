package io.ptune.prompt;

/**
 * How the soft prompt starts, before training (PEFT's {@code PromptTuningInit} plus {@code LABELS} and
 * {@code FROM_ADAPTER}). For P-tuning and dynamic prompts the values start the encoder's or
 * generator's {@code embedding}; for composite prompts, each block.
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
    LABELS,
    /**
     * The prompt of a saved adapter (a warm start): its {@code (n, C)} input prompt, which must
     * have the same number of virtual tokens and width. PEFT has no equivalent; adapters record
     * it as RANDOM.
     */
    FROM_ADAPTER
}
