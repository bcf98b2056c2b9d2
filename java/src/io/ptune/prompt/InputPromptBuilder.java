package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import java.nio.file.Path;
import java.util.List;

/**
 * What the builders of the methods with one input prompt share (prompt tuning, P-tuning, dynamic
 * prompts): the required number of virtual tokens, the seed, and how the prompt starts. The init
 * fields are set one by one ({@link #init} and the value it needs) or at once
 * ({@link #initialization}), and checked together when the config is built
 * ({@link PromptInitSpec} names the field that is missing or does not fit the init).
 *
 * @param <B> the concrete builder, which every setter returns
 */
public abstract class InputPromptBuilder<B extends InputPromptBuilder<B>> {
    private Integer numVirtualTokens;
    private PromptInit init = PromptInit.RANDOM;
    private String initText;
    private List<String> labelWords = List.of();
    private Path initAdapter;
    long seed = 42;

    InputPromptBuilder() {}

    /** Required: the number of virtual tokens, > 0. */
    public B numVirtualTokens(int numVirtualTokens) {
        this.numVirtualTokens = numVirtualTokens;
        return self();
    }

    /** Default {@link PromptInit#RANDOM}; TEXT, LABELS and FROM_ADAPTER also need their value. */
    public B init(PromptInit init) {
        this.init = init;
        return self();
    }

    /** Shorthand for {@code init(TEXT)} with this text. */
    public B initText(String initText) {
        this.init = PromptInit.TEXT;
        this.initText = initText;
        return self();
    }

    /** Shorthand for {@code init(LABELS)} with these words, one per class. */
    public B labelWords(List<String> labelWords) {
        this.init = PromptInit.LABELS;
        this.labelWords = labelWords;
        return self();
    }

    /** Shorthand for {@code init(FROM_ADAPTER)}: warm start from the adapter saved in {@code dir}. */
    public B initFromAdapter(Path dir) {
        this.init = PromptInit.FROM_ADAPTER;
        this.initAdapter = dir;
        return self();
    }

    /** All init fields at once. */
    public B initialization(PromptInitSpec spec) {
        this.init = spec.init();
        this.initText = spec.initText();
        this.labelWords = spec.labelWords();
        this.initAdapter = spec.adapter();
        return self();
    }

    /** Default 42. */
    public B seed(long seed) {
        this.seed = seed;
        return self();
    }

    /** @throws InvalidConfigException if {@link #numVirtualTokens} was not set */
    int requiredNumVirtualTokens() {
        if (numVirtualTokens == null) {
            throw new InvalidConfigException("numVirtualTokens",
                    "is required; set the number of virtual tokens (e.g. 20)");
        }
        return numVirtualTokens;
    }

    /** @throws InvalidConfigException naming the init field that is missing or does not fit the init */
    PromptInitSpec initSpec() {
        return new PromptInitSpec(init, initText, labelWords, initAdapter);
    }

    @SuppressWarnings("unchecked")
    private B self() {
        return (B) this;
    }
}
