package io.ptune.nativebridge;

import java.nio.file.Path;

/**
 * A frozen model (any family) held by the native core. Close it to free its weights.
 *
 * <p>Thread-safe: any number of threads may compute with it at once (each call has its own
 * activations, KV cache and sampling generator; the weights are only read). {@link #close} waits
 * for the calls in flight; afterwards every call throws {@link IllegalStateException}. Prompts,
 * classifiers and trainers made from it hold a native reference to its weights, so closing it
 * first never leaves them with freed memory: their own parameters stay readable, and what would
 * run the model throws.
 */
public final class NativeModel implements AutoCloseable {
    private final PtuneNative.Model handle;
    private final HandleGuard guard;
    private final int vocabSize;
    private final int hiddenSize;
    private final int numLayers;
    private final int numKeyValueHeads;
    private final int headDim;
    private final boolean causal;
    private final boolean lmHead;

    private NativeModel(PtuneNative.Model handle, String name) {
        this.handle = handle;
        this.guard = new HandleGuard(HandleGuard.Kind.MODEL, "model " + name,
                "load it again (Model.load) and create prompts, classifiers and trainers from the new instance");
        this.vocabSize = Math.toIntExact(handle.vocabSize());
        this.hiddenSize = Math.toIntExact(handle.hiddenSize());
        this.numLayers = Math.toIntExact(handle.numLayers());
        this.numKeyValueHeads = Math.toIntExact(handle.numKeyValueHeads());
        this.headDim = Math.toIntExact(handle.headDim());
        this.causal = handle.isCausal();
        this.lmHead = handle.hasLmHead();
    }

    /** Reads model.safetensors (or the shards of model.safetensors.index.json) in modelDir, fp32 on CPU. */
    public static NativeModel load(Path modelDir, ModelSpecOptions spec) {
        return load(modelDir, spec, 0, 0, 0);
    }

    /**
     * As {@link #load(Path, ModelSpecOptions)} on a device in a compute dtype: deviceType and dtype
     * are the ordinals of the façade's DeviceType (CPU 0, CUDA 1) and DType (fp32 0, bf16 1, fp16 2).
     * A device this process lacks fails with one line naming {@code --device}.
     */
    public static NativeModel load(Path modelDir, ModelSpecOptions spec, int deviceType, int deviceIndex, int dtype) {
        NativeCalls.ensureLoaded();
        try (PtuneNative.ModelSpec config = new PtuneNative.ModelSpec();
                PtuneNative.LoadOptions options = new PtuneNative.LoadOptions()) {
            options.device_type(deviceType).device_index(deviceIndex).dtype(dtype);
            ModelSpecOptions.Rope rope = spec.rope();
            config.family(spec.family().ordinal())
                    .vocab_size(spec.vocabSize())
                    .hidden_size(spec.hiddenSize())
                    .intermediate_size(spec.intermediateSize())
                    .num_hidden_layers(spec.numLayers())
                    .num_attention_heads(spec.numHeads())
                    .num_key_value_heads(spec.numKvHeads())
                    .head_dim(spec.headDim())
                    .max_position_embeddings(spec.maxPositions())
                    .norm_eps(spec.normEps())
                    .activation(spec.activation().ordinal())
                    .tie_word_embeddings(spec.tieWordEmbeddings())
                    .rope_theta(rope.theta())
                    .rope_type(rope.type())
                    .rope_factor(rope.factor())
                    .rope_low_freq_factor(rope.lowFreqFactor())
                    .rope_high_freq_factor(rope.highFreqFactor())
                    .rope_original_max_position(rope.originalMaxPosition())
                    .attention_bias(spec.attentionBias())
                    .mlp_bias(spec.mlpBias())
                    .sliding_window(spec.slidingWindow())
                    .first_window_layer(spec.firstWindowLayer())
                    .type_vocab_size(spec.typeVocabSize());
            String dir = modelDir.toAbsolutePath().toString();
            return NativeCalls.call(() -> new NativeModel(new PtuneNative.Model(dir, config, options), dir));
        }
    }

    /** The spec of a BERT-family encoder exported to ONNX, read from its graph by the native core. */
    public static ModelSpecOptions describeOnnxEncoder(Path onnxFile) {
        NativeCalls.ensureLoaded();
        String path = onnxFile.toAbsolutePath().toString();
        try (PtuneNative.ModelSpec s = NativeCalls.call(() -> PtuneNative.describeOnnxEncoder(path))) {
            return new ModelSpecOptions(ModelSpecOptions.Family.values()[s.family()], Math.toIntExact(s.vocab_size()),
                    Math.toIntExact(s.hidden_size()), Math.toIntExact(s.intermediate_size()),
                    Math.toIntExact(s.num_hidden_layers()), Math.toIntExact(s.num_attention_heads()),
                    Math.toIntExact(s.num_key_value_heads()), Math.toIntExact(s.head_dim()),
                    Math.toIntExact(s.max_position_embeddings()), s.norm_eps(),
                    ModelSpecOptions.Activation.values()[s.activation()], s.tie_word_embeddings(),
                    ModelSpecOptions.Rope.NONE, false, false, 0, Math.toIntExact(s.num_hidden_layers()),
                    Math.toIntExact(s.type_vocab_size()));
        }
    }

    /** GPUs libtorch can use in this process: 0 on a CPU-only build or without a GPU. */
    public static int cudaDeviceCount() {
        return NativeCalls.call(PtuneNative::cudaDeviceCount);
    }

    /** Decoders attend causally and can generate; encoders (BERT) attend both ways. */
    public boolean isCausal() {
        return causal;
    }

    /** Whether {@link #logits} exists: a decoder's LM head or an encoder's MLM head. */
    public boolean hasLmHead() {
        return lmHead;
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
        return numKeyValueHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** Whether {@link #close} was called. */
    public boolean isClosed() {
        return guard.isClosed();
    }

    /** The handle, for a call that holds {@link #guard}. */
    PtuneNative.Model handle() {
        return handle;
    }

    HandleGuard guard() {
        return guard;
    }

    /** Rows of the input embedding table: (n, C) row-major. */
    public float[] embed(long[] ids) {
        float[] out = new float[Math.multiplyExact(ids.length, hiddenSize)];
        NativeCalls.run(() -> handle.embed(ids, ids.length, out), guard.shared());
        return out;
    }

    /**
     * Logits (B, Pin+T, V) of the LM (or MLM) head with any prompt method (null = none); Pin =
     * {@link NativePrompt#inputVirtualTokens()} virtual positions come first. tokenTypes (B, T) may
     * be null (all 0; BERT's segment ids).
     */
    public float[] logits(NativePrompt prompt, long[] ids, long[] mask, long[] tokenTypes, int B, int T) {
        return rows(prompt, ids, mask, tokenTypes, B, T, vocabSize, true);
    }

    /** Final hidden states (B, Pin+T, C), same inputs as {@link #logits}. */
    public float[] hiddenStates(NativePrompt prompt, long[] ids, long[] mask, long[] tokenTypes, int B, int T) {
        return rows(prompt, ids, mask, tokenTypes, B, T, hiddenSize, false);
    }

    private float[] rows(NativePrompt prompt, long[] ids, long[] mask, long[] tokenTypes, int B, int T, int width,
            boolean logits) {
        NativeCalls.requireLength("ids", ids, (long) B * T);
        NativeCalls.requireLength("mask", mask, (long) B * T);
        if (tokenTypes != null) {
            NativeCalls.requireLength("tokenTypes", tokenTypes, (long) B * T);
        }
        int virtual = prompt == null ? 0 : prompt.inputVirtualTokens();
        float[] out = new float[Math.toIntExact((long) B * (virtual + T) * width)];
        PtuneNative.PromptModel p = prompt == null ? null : prompt.handle();
        HandleGuard.Use promptUse = prompt == null ? null : prompt.guard().shared();
        if (logits) {
            NativeCalls.run(() -> handle.logits(p, ids, mask, tokenTypes, B, T, out), guard.shared(), promptUse);
        } else {
            NativeCalls.run(() -> handle.hiddenStates(p, ids, mask, tokenTypes, B, T, out), guard.shared(), promptUse);
        }
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
            options.copyTo(nativeOptions);
            NativeCalls.run(() ->
                    handle.generate(p, ids, mask, B, T, eosIds, eosIds.length, nativeOptions, tokens, lengths),
                    guard.shared(), prompt == null ? null : prompt.guard().shared());
        }
        long[][] rows = new long[B][];
        for (int b = 0; b < B; b++) {
            rows[b] = java.util.Arrays.copyOfRange(tokens, b * n, b * n + (int) lengths[b]);
        }
        return rows;
    }

    /** Frees the weights (once prompts, classifiers and trainers made from it are closed too); idempotent. */
    @Override
    public void close() {
        guard.close(handle::close);
    }
}
