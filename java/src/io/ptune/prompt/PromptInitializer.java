package io.ptune.prompt;

import io.ptune.InvalidConfigException;
import io.ptune.model.Model;
import io.ptune.model.Tokenizer;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.ServiceLoader;

/**
 * Builds the starting soft prompt for a model, with PEFT's semantics for the methods PEFT has
 * (see {@code peft/tuners/prompt_tuning/model.py}).
 */
public final class PromptInitializer {
    private PromptInitializer() {}

    /** The initial {@code (n, C)} prompt for {@code model} as {@code config} describes it. */
    public static SoftPrompt initialize(PromptTuningConfig config, Model model) {
        int n = config.numVirtualTokens();
        int dim = model.architecture().hiddenSize();
        return new SoftPrompt(n, dim, initialValues(config.initialization(), n, config.seed(), model, null));
    }

    /**
     * The initial {@code (n, C)} values of an input-level prompt (or composite block), row-major.
     *
     * @param blockName for a composite block, its name: FROM_ADAPTER then takes the block of that
     *     name when the adapter is a composite one that has it; null otherwise
     * @throws InvalidConfigException if FROM_ADAPTER names an adapter whose prompt has another
     *     number of virtual tokens or width, or is not an input prompt (prefix tuning)
     */
    public static float[] initialValues(PromptInitSpec spec, int n, long seed, Model model, String blockName) {
        int dim = model.architecture().hiddenSize();
        return switch (spec.init()) {
            case RANDOM -> randomNormal(n, dim, seed);
            case SAMPLE_VOCAB -> model.embed(sampleVocabIds(n, model.architecture().vocabSize(), seed));
            case TEXT -> model.embed(textInitIds(model.tokenizer().encode(spec.initText(), true), n));
            case LABELS -> labelInit(spec.labelWords(), n, model);
            case FROM_ADAPTER -> fromAdapter(spec.adapter(), n, model, blockName);
        };
    }

    private static float[] fromAdapter(Path dir, int n, Model model, String blockName) {
        SavedPromptReader reader = ServiceLoader.load(SavedPromptReader.class, PromptInitializer.class.getClassLoader())
                .findFirst()
                .orElseThrow(() -> new IllegalStateException("no " + SavedPromptReader.class.getName()
                        + " on the class path (it comes with ptune's io.ptune.adapter package)"));
        SoftPrompt prompt = reader.readInputPrompt(dir, model.architecture(), blockName);
        if (prompt.numVirtualTokens() != n) {
            throw new InvalidConfigException("initAdapter", dir + " holds a prompt of " + prompt.numVirtualTokens()
                    + " virtual tokens" + (blockName == null ? "" : " for block '" + blockName + "'") + " but "
                    + n + " are configured; set the number of virtual tokens to " + prompt.numVirtualTokens()
                    + " or warm-start from another adapter");
        }
        return prompt.values();
    }

    /**
     * N(0, 1) values, like PEFT's freshly created {@code nn.Embedding}. The numbers differ from
     * PyTorch's generator; only the distribution matches.
     */
    public static float[] randomNormal(int n, int dim, long seed) {
        Random random = new Random(seed);
        float[] values = new float[n * dim];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    /** {@code n} token ids drawn uniformly from {@code [0, vocabSize)}, as PEFT's SAMPLE_VOCAB. */
    public static long[] sampleVocabIds(int n, int vocabSize, long seed) {
        Random random = new Random(seed);
        long[] ids = new long[n];
        for (int i = 0; i < n; i++) {
            ids[i] = random.nextInt(vocabSize);
        }
        return ids;
    }

    /**
     * PEFT's TEXT rule: the text's ids (with special tokens, as {@code tokenizer(text)} gives them)
     * trimmed to the first {@code n} when longer, or repeated {@code ceil(n / len)} times and then
     * trimmed when shorter.
     */
    public static long[] textInitIds(long[] textIds, int n) {
        if (textIds.length == 0) {
            throw new InvalidConfigException("initText", "tokenises to no tokens; give a non-empty text");
        }
        long[] ids = new long[n];
        for (int i = 0; i < n; i++) {
            // Repeating then trimming is the same as reading the text cyclically.
            ids[i] = textIds[i % textIds.length];
        }
        return ids;
    }

    /**
     * LABELS: class c's vector is the mean embedding of the tokens of {@code labelWords.get(c)}
     * (encoded without special tokens); virtual token i takes class {@code i % k}'s vector.
     */
    private static float[] labelInit(List<String> labelWords, int n, Model model) {
        Tokenizer tokenizer = model.tokenizer();
        int dim = model.architecture().hiddenSize();
        int k = labelWords.size();
        float[][] classVectors = new float[k][];
        for (int c = 0; c < k; c++) {
            long[] ids = tokenizer.encode(labelWords.get(c), false);
            if (ids.length == 0) {
                throw new InvalidConfigException("labelWords",
                        "'" + labelWords.get(c) + "' tokenises to no tokens; use a real word");
            }
            classVectors[c] = meanRows(model.embed(ids), ids.length, dim);
        }
        float[] values = new float[n * dim];
        for (int i = 0; i < n; i++) {
            System.arraycopy(classVectors[i % k], 0, values, i * dim, dim);
        }
        return values;
    }

    /** The mean of the {@code rows} rows of a {@code (rows, dim)} row-major matrix. */
    static float[] meanRows(float[] matrix, int rows, int dim) {
        double[] sum = new double[dim];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < dim; j++) {
                sum[j] += matrix[r * dim + j];
            }
        }
        float[] mean = new float[dim];
        for (int j = 0; j < dim; j++) {
            mean[j] = (float) (sum[j] / rows);
        }
        return mean;
    }
}
