package io.ptune.model;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.PtuneException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.NativeModel;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.SoftPrompt;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A frozen Hugging Face causal language model: its architecture, its tokenizer and its weights in
 * the native core. Owns native memory; close it (try-with-resources) when done.
 *
 * <p>Everything that trains or generates with a prompt ({@code Trainer}, {@code Generator}) borrows
 * this model and never closes it.
 */
public final class CausalLm implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CausalLm.class);

    private final Path modelDir;
    private final LlamaArchitecture architecture;
    private final Tokenizer tokenizer;
    private final NativeModel nativeModel;
    private final List<Long> eosTokenIds;
    private boolean closed;

    private CausalLm(Path modelDir, LlamaArchitecture architecture, Tokenizer tokenizer,
            NativeModel nativeModel, List<Long> eosTokenIds) {
        this.modelDir = modelDir;
        this.architecture = architecture;
        this.tokenizer = tokenizer;
        this.nativeModel = nativeModel;
        this.eosTokenIds = List.copyOf(eosTokenIds);
    }

    /**
     * Loads a Hugging Face model directory: {@code config.json}, {@code generation_config.json}
     * (optional, for the end-of-sequence ids), {@code tokenizer.json} and the safetensors weights.
     *
     * @throws ModelFormatException if the directory or one of its files is missing or malformed
     */
    public static CausalLm load(Path modelDir) {
        Objects.requireNonNull(modelDir, "modelDir");
        if (!Files.isDirectory(modelDir)) {
            throw new ModelFormatException("model directory " + modelDir + " does not exist or is"
                    + " not a directory; pass the folder that holds config.json, tokenizer.json and"
                    + " model.safetensors (what save_pretrained writes)");
        }
        LlamaArchitecture architecture = LlamaArchitecture.fromConfigJson(modelDir.resolve("config.json"));
        if (!Files.isRegularFile(modelDir.resolve("model.safetensors"))
                && !Files.isRegularFile(modelDir.resolve("model.safetensors.index.json"))) {
            String hint = Files.exists(modelDir.resolve("pytorch_model.bin"))
                    ? "; only pytorch_model.bin was found: convert it with"
                            + " model.save_pretrained(dir, safe_serialization=True)"
                    : "";
            throw new ModelFormatException(modelDir + " has neither model.safetensors nor"
                    + " model.safetensors.index.json; ptune reads weights in safetensors format" + hint);
        }
        List<Long> eos = eosTokenIds(modelDir, architecture);

        Tokenizer tokenizer = Tokenizer.load(modelDir);
        NativeModel nativeModel = null;
        try {
            if (tokenizer.vocabSize() > architecture.vocabSize()) {
                LOG.warn("{}: tokenizer.json defines ids up to {} but the model has vocab_size {};"
                        + " texts using the extra tokens cannot be embedded", modelDir,
                        tokenizer.vocabSize() - 1, architecture.vocabSize());
            }
            if (eos.isEmpty() && tokenizer.eosTokenId().isPresent()) {
                eos = List.of(tokenizer.eosTokenId().getAsLong());
            }
            nativeModel = NativeModel.load(modelDir, architecture);
            if (nativeModel.vocabSize() != architecture.vocabSize()
                    || nativeModel.hiddenSize() != architecture.hiddenSize()
                    || nativeModel.numLayers() != architecture.numLayers()) {
                throw new ModelFormatException(modelDir + ": the weights (vocab " + nativeModel.vocabSize()
                        + ", hidden " + nativeModel.hiddenSize() + ", layers " + nativeModel.numLayers()
                        + ") do not match config.json (vocab " + architecture.vocabSize() + ", hidden "
                        + architecture.hiddenSize() + ", layers " + architecture.numLayers() + ")");
            }
            LOG.info("loaded {} ({}, {} layers, hidden {}, vocab {})", modelDir,
                    architecture.modelType(), architecture.numLayers(), architecture.hiddenSize(),
                    architecture.vocabSize());
            return new CausalLm(modelDir, architecture, tokenizer, nativeModel, eos);
        } catch (RuntimeException e) {
            if (nativeModel != null) {
                nativeModel.close();
            }
            tokenizer.close();
            throw e;
        }
    }

    /**
     * The ids that end generation: {@code generation_config.json}'s {@code eos_token_id} when that
     * file has one (it is what transformers' {@code generate} uses), else config.json's.
     */
    private static List<Long> eosTokenIds(Path modelDir, LlamaArchitecture architecture) {
        Path generationConfig = modelDir.resolve("generation_config.json");
        if (Files.isRegularFile(generationConfig)) {
            JsonNode root = JsonFiles.readObject(generationConfig, ModelFormatException::new, "");
            try {
                List<Long> ids = LlamaArchitecture.tokenIdList(root, "eos_token_id");
                for (long id : ids) {
                    if (id < 0 || id >= architecture.vocabSize()) {
                        throw new ModelFormatException("eos_token_id " + id
                                + " is outside the vocabulary [0, " + architecture.vocabSize() + ")");
                    }
                }
                if (!ids.isEmpty()) {
                    return ids;
                }
            } catch (ModelFormatException e) {
                throw new ModelFormatException(generationConfig + ": " + e.getMessage(), e);
            }
        }
        return architecture.eosTokenIds();
    }

    /**
     * Next-token logits for one sequence, optionally behind a prompt of any method.
     *
     * @param prompt a {@link PromptModule} of this model (for fixed values, {@link
     *     PromptModule#fixed}), or null for the bare model
     * @param ids token ids, used as given (no BOS is added)
     * @return {@code Pin + T} rows of {@code V} logits: the {@code Pin} input-level virtual
     *     positions first ({@link PromptModule#inputVirtualTokens()}: n, or 0 for prefix tuning)
     */
    public float[][] logits(PromptModule prompt, long[] ids) {
        ensureOpen();
        Objects.requireNonNull(ids, "ids");
        if (ids.length == 0) {
            throw new IllegalArgumentException("ids must not be empty");
        }
        checkTokenIds(ids);
        checkPromptModule(prompt);
        long[] mask = new long[ids.length];
        Arrays.fill(mask, 1L);
        int t = ids.length;
        int p = prompt == null ? 0 : prompt.inputVirtualTokens();
        float[] flat = nativeModel.logits(prompt == null ? null : prompt.nativePrompt(), ids, mask, 1, t);
        int v = architecture.vocabSize();
        int rows = p + t;
        if (flat.length != (long) rows * v) {
            throw new PtuneException("native logits returned " + flat.length + " values, expected "
                    + rows + " x " + v);
        }
        float[][] out = new float[rows][];
        for (int r = 0; r < rows; r++) {
            out[r] = Arrays.copyOfRange(flat, r * v, (r + 1) * v);
        }
        return out;
    }

    /** Rejects a prompt module created for another model (or closed). */
    public void checkPromptModule(PromptModule prompt) {
        if (prompt != null && prompt.model() != this) {
            throw new IllegalArgumentException("the prompt was created for another model instance ("
                    + prompt.model().modelDir() + "); create or load it with this model");
        }
    }

    /**
     * Embedding rows of {@code ids}, flattened {@code (n, C)} row-major.
     */
    public float[] embed(long[] ids) {
        ensureOpen();
        checkTokenIds(ids);
        return nativeModel.embed(ids);
    }

    /** Rejects a prompt whose width does not fit this model. */
    public void checkPrompt(SoftPrompt prompt) {
        if (prompt.dim() != architecture.hiddenSize()) {
            throw new IllegalArgumentException("the soft prompt has dim " + prompt.dim()
                    + " but the model's hidden_size is " + architecture.hiddenSize());
        }
    }

    /** Rejects ids outside the embedding table, which the native core cannot look up. */
    public void checkTokenIds(long[] ids) {
        int v = architecture.vocabSize();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= v) {
                throw new IllegalArgumentException("token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + v + ")");
            }
        }
    }

    public Path modelDir() {
        return modelDir;
    }

    public LlamaArchitecture architecture() {
        return architecture;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The ids that end generation (generation_config.json, else config.json, else the tokenizer's). */
    public List<Long> eosTokenIds() {
        return eosTokenIds;
    }

    /**
     * The id used to pad batches: config.json's pad_token_id, else the tokenizer's pad token, else
     * the first EOS id, else 0. Padded positions are masked, so the choice never changes a result.
     */
    public long padTokenId() {
        if (architecture.padTokenId() != null) {
            return architecture.padTokenId();
        }
        if (tokenizer.padTokenId().isPresent()) {
            return tokenizer.padTokenId().getAsLong();
        }
        return eosTokenIds.isEmpty() ? 0L : eosTokenIds.get(0);
    }

    /** The native handle, for the training and inference packages. */
    public NativeModel nativeModel() {
        ensureOpen();
        return nativeModel;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            try {
                nativeModel.close();
            } finally {
                tokenizer.close();
            }
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("model " + modelDir + " is closed");
        }
    }
}
