package io.ptune.nativebridge;

import io.ptune.model.LlamaArchitecture;
import java.nio.file.Path;

/** A frozen causal LM held by the native core. Close it to free its weights. */
public final class NativeModel implements AutoCloseable {
    private final PtuneNative.CausalLm handle;
    private final int vocabSize;
    private final int hiddenSize;
    private final int numLayers;

    private NativeModel(PtuneNative.CausalLm handle) {
        this.handle = handle;
        this.vocabSize = Math.toIntExact(handle.vocabSize());
        this.hiddenSize = Math.toIntExact(handle.hiddenSize());
        this.numLayers = Math.toIntExact(handle.numLayers());
    }

    /** Reads model.safetensors (or the shards of model.safetensors.index.json) in modelDir. */
    public static NativeModel load(Path modelDir, LlamaArchitecture arch) {
        NativeCalls.ensureLoaded();
        try (PtuneNative.LlamaConfig config = new PtuneNative.LlamaConfig()) {
            config.vocab_size(arch.vocabSize())
                    .hidden_size(arch.hiddenSize())
                    .intermediate_size(arch.intermediateSize())
                    .num_hidden_layers(arch.numLayers())
                    .num_attention_heads(arch.numHeads())
                    .num_key_value_heads(arch.numKvHeads())
                    .head_dim(arch.headDim())
                    .max_position_embeddings(arch.maxPositionEmbeddings())
                    .rms_norm_eps(arch.rmsNormEps())
                    .rope_theta(arch.ropeTheta())
                    .tie_word_embeddings(arch.tieWordEmbeddings())
                    .attention_bias(arch.attentionBias())
                    .mlp_bias(arch.mlpBias())
                    .sliding_window(arch.slidingWindow())
                    .first_window_layer(arch.firstSlidingLayer())
                    .rope_type(arch.ropeScaling().type().ordinal())
                    .rope_factor(arch.ropeScaling().factor())
                    .rope_low_freq_factor(arch.ropeScaling().lowFreqFactor())
                    .rope_high_freq_factor(arch.ropeScaling().highFreqFactor())
                    .rope_original_max_position(arch.ropeScaling().originalMaxPosition());
            String dir = modelDir.toAbsolutePath().toString();
            return NativeCalls.call(() -> new NativeModel(new PtuneNative.CausalLm(dir, config)));
        }
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int hiddenSize() {
        return hiddenSize;
    }

    public int numLayers() {
        return numLayers;
    }

    public int numKeyValueHeads() {
        return Math.toIntExact(handle.numKeyValueHeads());
    }

    public int headDim() {
        return Math.toIntExact(handle.headDim());
    }

    PtuneNative.CausalLm handle() {
        return handle;
    }

    /** Rows of the input embedding table: (n, C) row-major. */
    public float[] embed(long[] ids) {
        float[] out = new float[Math.multiplyExact(ids.length, hiddenSize)];
        NativeCalls.run(() -> handle.embed(ids, ids.length, out));
        return out;
    }

    /**
     * Logits (B, Pin+T, V) with any prompt method (null = none); Pin = {@link
     * NativePrompt#inputVirtualTokens()} virtual positions come first.
     */
    public float[] logits(NativePrompt prompt, long[] ids, long[] mask, int B, int T) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        int virtual = prompt == null ? 0 : prompt.inputVirtualTokens();
        float[] out = new float[Math.toIntExact((long) B * (virtual + T) * vocabSize)];
        PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
        NativeCalls.run(() -> handle.logits(p, ids, mask, B, T, out));
        return out;
    }

    /**
     * Decodes with a KV cache and any prompt method (null = none); the prompt and the input are
     * encoded once, and the cache starts from a prefix, if any. ids and mask are (B, T),
     * left-padded. Returns each row's new tokens, EOS included when it was produced.
     */
    public long[][] generate(
            NativePrompt prompt, long[] ids, long[] mask, int B, int T, long[] eosIds, DecodingOptions options) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        int n = options.maxNewTokens();
        long[] tokens = new long[Math.multiplyExact(B, n)];
        long[] lengths = new long[B];
        PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
        try (PtuneNative.GenerateOptions nativeOptions = new PtuneNative.GenerateOptions()) {
            nativeOptions
                    .max_new_tokens(n)
                    .greedy(options.greedy())
                    .temperature(options.temperature())
                    .top_k(options.topK())
                    .top_p(options.topP())
                    .seed(options.seed())
                    .pad_token_id(options.padTokenId());
            NativeCalls.run(() ->
                    handle.generate(p, ids, mask, B, T, eosIds, eosIds.length, nativeOptions, tokens, lengths));
        }
        long[][] rows = new long[B][];
        for (int b = 0; b < B; b++) {
            rows[b] = java.util.Arrays.copyOfRange(tokens, b * n, b * n + (int) lengths[b]);
        }
        return rows;
    }

    @Override
    public void close() {
        handle.close();
    }
}
