package io.ptune.classify;

/**
 * How a verbalizer scores a label word that the tokenizer splits into several tokens
 * (OpenPrompt's {@code multi_token_handler}). Every token is read at the same slot: the
 * {@code [MASK]} position, or a causal LM's next-token position.
 */
public enum MultiTokenRule {
    /** The word's first token only (OpenPrompt's default). */
    FIRST,
    /** The mean of the word's tokens' logits. */
    MEAN,
    /** The largest of the word's tokens' logits. */
    MAX;

    /** The flag / file spelling: first, mean, max. */
    public String cliName() {
        return CliNames.of(this);
    }

    /** @throws io.ptune.InvalidConfigException (field "multiToken") for an unknown name */
    public static MultiTokenRule parse(String name) {
        return CliNames.parse(values(), name, "multiToken");
    }
}
