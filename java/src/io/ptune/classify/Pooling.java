package io.ptune.classify;

/** Which vector the linear head reads. */
public enum Pooling {
    /**
     * Position 0 of what the model sees, through BERT's pooler: the first virtual token behind
     * prompt tuning or P-tuning, [CLS] otherwise. This is what transformers + PEFT compute, so the
     * saved SEQ_CLS adapter gives the same logits in PEFT. The encoders' default.
     */
    CLS,
    /** The first text token ([CLS]) whatever the prompt, through BERT's pooler (P-tuning v2). */
    FIRST_TEXT,
    /** The mean of the final hidden states over the text tokens (not the virtual ones). */
    MEAN,
    /** The last text token's final hidden state: decoders' {@code score} head and their default. */
    LAST;

    /** The flag / file spelling: cls, first-text, mean, last. */
    public String cliName() {
        return CliNames.of(this);
    }

    /** @throws io.ptune.InvalidConfigException (field "pooling") for an unknown name */
    public static Pooling parse(String name) {
        return CliNames.parse(values(), name, "pooling");
    }
}
