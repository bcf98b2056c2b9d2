package io.ptune.classify;

/** What turns the frozen model's output into class scores. */
public enum ClassificationHead {
    /**
     * A trainable linear layer on a pooled vector (transformers' {@code *ForSequenceClassification},
     * PEFT's SEQ_CLS): BERT's {@code classifier} (with bias, after the pooler), decoders' {@code score}.
     */
    LINEAR,
    /**
     * PET: the label words' log-probabilities at the template's {@code {mask}} slot (the
     * {@code [MASK]} position of an encoder's MLM head, or the next token of a causal LM), averaged
     * per class as OpenPrompt's ManualVerbalizer does. Needs a model with an LM or MLM head.
     */
    VERBALIZER,
    /**
     * WARP: trainable class vectors, initialised from the label words' output embeddings, scored
     * against the hidden state at the slot. Works on encoders without an MLM head.
     */
    SOFT_VERBALIZER;

    /** The flag / file spelling: linear, verbalizer, soft-verbalizer. */
    public String cliName() {
        return CliNames.of(this);
    }

    /** @throws io.ptune.InvalidConfigException (field "head") for an unknown name */
    public static ClassificationHead parse(String name) {
        return CliNames.parse(values(), name, "head");
    }
}
