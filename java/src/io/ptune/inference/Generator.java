package io.ptune.inference;

import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.data.Batch;
import io.ptune.data.Collator;
import io.ptune.model.Model;
import io.ptune.nativebridge.DecodingOptions;
import io.ptune.prompt.PromptModule;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Generates text with a {@link Model}, optionally behind a trained prompt of any method (a
 * {@link PromptModule}, e.g. loaded with {@code PromptAdapter.load}).
 * The prompt (or prefix) and the input are encoded once; decoding continues from the KV cache.
 *
 * <p>Several prompts run as one batch, left-padded so that every row's next token lands in the
 * same column; positions come from the mask, so each row generates exactly what it would alone.
 * A row stops at any of the model's EOS ids (generation_config.json, else config.json). The
 * model is borrowed, not owned.
 */
public final class Generator {
    private final Model model;
    private final PromptModule prompt;
    private final GenerationConfig config;

    /**
     * @param prompt a {@link PromptModule} of this model (borrowed: it must stay open while
     *     generating), or null for the bare model
     */
    public Generator(Model model, PromptModule prompt, GenerationConfig config) {
        this.model = Objects.requireNonNull(model, "model");
        this.config = Objects.requireNonNull(config, "config");
        if (!model.architecture().causal()) {
            throw new IllegalArgumentException(model.modelDir() + " is a " + model.architecture().modelType()
                    + " encoder; generation needs a decoder (use its logits or hidden states)");
        }
        model.checkPromptModule(prompt);
        this.prompt = prompt;
    }

    /** Continues each list of ids (used as given: no BOS is added). */
    public List<Generation> generate(List<long[]> promptIds) {
        Objects.requireNonNull(promptIds, "promptIds");
        if (promptIds.isEmpty()) {
            return List.of();
        }
        for (long[] ids : promptIds) {
            model.checkTokenIds(ids);
        }
        long padId = model.padTokenId();
        Batch batch = new Collator(padId).leftPad(promptIds);
        int p = prompt == null ? 0 : prompt.numVirtualTokens();
        long longest = (long) p + batch.seqLen() + config.maxNewTokens();
        int limit = model.architecture().maxPositionEmbeddings();  // 0: none (ALiBi)
        if (limit > 0 && longest > limit) {
            throw new InvalidConfigException("maxNewTokens", "is " + config.maxNewTokens() + ", but " + p
                    + " virtual + " + batch.seqLen() + " prompt + " + config.maxNewTokens() + " new tokens exceed the"
                    + " model's " + limit + " positions (config.json max_position_embeddings / n_positions); give"
                    + " --max-new-tokens "
                    + Math.max(0, limit - p - batch.seqLen()) + " or less, or a shorter prompt");
        }
        long[] eos = model.eosTokenIds().stream().mapToLong(Long::longValue).toArray();
        DecodingOptions options = new DecodingOptions(config.maxNewTokens(), config.greedy(),
                config.temperature(), config.topK(), config.topP(), config.seed(), padId);
        long[][] generated = model.nativeModel().generate(prompt == null ? null : prompt.nativePrompt(),
                batch.ids(), batch.mask(), batch.batchSize(), batch.seqLen(), eos, options);
        if (generated.length != promptIds.size()) {
            throw new PtuneException("native generate returned " + generated.length + " rows for "
                    + promptIds.size() + " prompts");
        }
        List<Generation> out = new ArrayList<>(generated.length);
        for (int row = 0; row < generated.length; row++) {
            // Ids work without tokenizer files; then there is no text.
            out.add(new Generation(promptIds.get(row), generated[row],
                    model.hasTokenizer() ? model.tokenizer().decode(generated[row], true) : null));
        }
        return out;
    }

    /** Continues one text, tokenised with the model's settings (BOS where its tokenizer adds it). */
    public Generation generate(String text) {
        return generate(List.of(model.tokenizer().encode(text, true))).get(0);
    }
}
