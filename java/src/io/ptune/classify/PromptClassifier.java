package io.ptune.classify;

import io.ptune.InvalidConfigException;
import io.ptune.data.ClassificationDataset;
import io.ptune.data.ClassificationExample;
import io.ptune.data.ClassificationMetrics;
import io.ptune.model.Model;
import io.ptune.nativebridge.ClassifierSpecOptions;
import io.ptune.nativebridge.NativeClassifier;
import io.ptune.nativebridge.NativePrompt;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A classifier on a frozen {@link Model}: an optional prompt of any method ({@link PromptModule})
 * and a head ({@link ClassificationHead}: linear, PET verbalizer or soft verbalizer) over a fixed
 * list of labels. Owns its prompt and its native head; borrows the model.
 *
 * <pre>{@code
 * try (Model model = Model.load(dir);
 *      PromptClassifier classifier = PromptClassifier.load(model, adapterDir)) {
 *     PromptClassifier.Prediction p = classifier.classify("a gripping, funny film");
 * }
 * }</pre>
 *
 * Train one with {@link ClassificationTrainer}; save it with {@link #save} (PEFT's SEQ_CLS layout
 * for the linear head, see {@link ClassifierFiles}).
 *
 * <p>Thread-safe: several threads may classify at once (a verbalizer's calibration is computed
 * once, by the first of them). After {@link #close} (idempotent) its methods throw
 * {@link IllegalStateException}; so does classifying after the model was closed.
 */
public final class PromptClassifier implements AutoCloseable {
    /** The content-free inputs of contextual calibration (Zhao et al. 2021). */
    public static final List<String> CONTENT_FREE = List.of("", "N/A");
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(PromptClassifier.class);
    private static final int SCORE_BATCH = 16;

    private final Model model;
    private final PromptModule prompt;
    private final NativeClassifier head;
    private final ClassificationConfig config;
    private final List<String> labels;
    private final int maxLength;
    private final InputEncoder encoder;
    private volatile boolean calibrated;
    private volatile boolean closed;

    /** Takes ownership of {@code prompt} (nullable); closes it when construction fails. */
    PromptClassifier(Model model, PromptModule prompt, ClassificationConfig config, List<String> labels,
            int maxLength) {
        NativeClassifier built = null;
        try {
            this.model = Objects.requireNonNull(model, "model");
            this.prompt = prompt;
            this.config = Objects.requireNonNull(config, "config");
            this.labels = List.copyOf(labels);
            this.maxLength = fitted(model, prompt, maxLength);
            if (this.labels.size() < 2) {
                throw new InvalidConfigException("labels", "the data has only " + this.labels.size() + " class"
                        + (this.labels.isEmpty() ? "es" : " (" + this.labels.get(0) + ")")
                        + "; classification needs at least two");
            }
            if (maxLength <= 1) {
                throw new InvalidConfigException("maxLength", "must be > 1, got " + maxLength);
            }
            model.checkPromptModule(prompt);
            Pooling pooling = pooling(model, config);
            this.encoder = new InputEncoder(model, config.template(), this.maxLength);
            long[][] words = labelWords();
            ClassifierSpecOptions spec = new ClassifierSpecOptions(
                    ClassifierSpecOptions.Head.values()[config.head().ordinal()], this.labels.size(),
                    ClassifierSpecOptions.Pooling.values()[pooling.ordinal()], !model.architecture().causal(),
                    ClassifierSpecOptions.MultiToken.values()[config.multiToken().ordinal()], config.seed());
            built = words == null ? new NativeClassifier(model.nativeModel(), spec, null, null, null)
                    : new NativeClassifier(model.nativeModel(), spec, words[0], words[1], words[2]);
            this.head = built;
        } catch (RuntimeException e) {
            if (built != null) {
                built.close();
            }
            if (prompt != null) {
                prompt.close();
            }
            throw e;
        }
    }

    /**
     * A new classifier: a new prompt as {@code promptConfig} says (null for none: the head alone,
     * e.g. a linear probe or a zero-shot verbalizer) and a new head.
     *
     * @param labels the classes in index order (at least two)
     * @param maxLength longest input in tokens; longer texts lose their end
     * @throws InvalidConfigException when the head does not fit the model or the labels (a
     *     verbalizer without an LM head, a label missing from the verbalizer, a label word outside
     *     the vocabulary, one class)
     */
    public static PromptClassifier create(Model model, PromptMethodConfig promptConfig, ClassificationConfig config,
            List<String> labels, int maxLength) {
        PromptModule prompt = promptConfig == null ? null : PromptModule.create(model, promptConfig);
        return new PromptClassifier(model, prompt, config, labels, maxLength);
    }

    /**
     * Loads a classifier saved by {@link #save} (or a SEQ_CLS adapter written by PEFT, whose labels
     * become {@code LABEL_0 … LABEL_{K-1}} as in transformers), for inference.
     *
     * @throws io.ptune.AdapterException naming the file when the directory is no classifier or
     *     does not fit the model
     */
    public static PromptClassifier load(Model model, Path dir) {
        return ClassifierFiles.load(model, dir);
    }

    /**
     * Writes the classifier into {@code dir} atomically (see {@link ClassifierFiles}); the adapter
     * records the model's directory as base_model_name_or_path.
     */
    public void save(Path dir) {
        save(dir, model.modelDir().toAbsolutePath().normalize().toString());
    }

    /** As {@link #save(Path)}, recording {@code baseModelNameOrPath} (e.g. a hub id) as the base model. */
    public void save(Path dir, String baseModelNameOrPath) {
        ensureOpen();
        ClassifierFiles.save(this, dir, baseModelNameOrPath);
    }

    /** maxLength, lowered so that the prompt's positions and the text fit the model's positions. */
    private static int fitted(Model model, PromptModule prompt, int maxLength) {
        int room = model.architecture().maxPositionEmbeddings() - (prompt == null ? 0 : prompt.numVirtualTokens());
        if (maxLength > room && room > 1) {
            LOG.info("inputs are cut at {} tokens: {} positions of {} remain after the prompt's {}", room, room,
                    model.architecture().maxPositionEmbeddings(), prompt == null ? 0 : prompt.numVirtualTokens());
            return room;
        }
        return maxLength;
    }

    private static Pooling pooling(Model model, ClassificationConfig config) {
        boolean causal = model.architecture().causal();
        Pooling pooling = config.pooling() != null ? config.pooling() : causal ? Pooling.LAST : Pooling.CLS;
        if (causal && (pooling == Pooling.CLS || pooling == Pooling.FIRST_TEXT)) {
            throw new InvalidConfigException("pooling", pooling.cliName() + " reads the first position, which a"
                    + " causal " + model.architecture().modelType() + " computes before it has seen the text; use"
                    + " last (the default) or mean");
        }
        return pooling;
    }

    /** {wordClass, wordOffsets, wordTokens} of the verbalizer heads, or null for the linear head. */
    private long[][] labelWords() {
        if (config.head() == ClassificationHead.LINEAR) {
            return null;
        }
        if (config.head() == ClassificationHead.VERBALIZER && !model.nativeModel().hasLmHead()) {
            throw new InvalidConfigException("head", model.modelDir() + " (" + model.architecture().modelType()
                    + ") has no LM or MLM head to score label words with; use --head soft-verbalizer (trainable"
                    + " class vectors on the hidden state) or --head linear");
        }
        Verbalizer verbalizer = config.verbalizer() != null ? config.verbalizer() : Verbalizer.ofLabels(labels);
        verbalizer.checkCovers(labels);
        List<Long> wordClass = new ArrayList<>();
        List<Long> offsets = new ArrayList<>(List.of(0L));
        List<Long> tokens = new ArrayList<>();
        for (int c = 0; c < labels.size(); c++) {
            String label = labels.get(c);
            for (String word : verbalizer.words().get(label)) {
                long[] ids = encoder.encodeWord(label, word);
                model.checkTokenIds(ids);
                wordClass.add((long) c);
                for (long id : ids) {
                    tokens.add(id);
                }
                offsets.add((long) tokens.size());
            }
        }
        return new long[][] {toArray(wordClass), toArray(offsets), toArray(tokens)};
    }

    /** The label words' token ids per class, as the verbalizer heads score them (for inspection). */
    public Map<String, List<long[]>> labelWordIds() {
        ensureOpen();
        Map<String, List<long[]>> out = new LinkedHashMap<>();
        if (config.head() == ClassificationHead.LINEAR) {
            return out;
        }
        Verbalizer verbalizer = config.verbalizer() != null ? config.verbalizer() : Verbalizer.ofLabels(labels);
        for (String label : labels) {
            List<long[]> ids = new ArrayList<>();
            for (String word : verbalizer.words().get(label)) {
                ids.add(encoder.encodeWord(label, word));
            }
            out.put(label, List.copyOf(ids));
        }
        return out;
    }

    /** One example as the model sees it (special tokens, template, slot). */
    public ClassifierInput encode(String text, String textB) {
        ensureOpen();
        Objects.requireNonNull(text, "text");
        return encoder.encode(text, textB);
    }

    /** The inputs of a data set, in its order. */
    public List<ClassifierInput> encode(ClassificationDataset data) {
        List<ClassifierInput> out = new ArrayList<>(data.size());
        for (ClassificationExample example : data.examples()) {
            try {
                out.add(encode(example.text(), example.textB()));
            } catch (IllegalArgumentException e) {
                throw new io.ptune.DatasetException(data.source() + ":" + example.line() + ": " + e.getMessage());
            }
        }
        return out;
    }

    /**
     * Class scores, one row of K per input: the linear head's logits, or the verbalizer's
     * per-class mean label-word log-probabilities (softmax them for probabilities).
     */
    public float[][] scores(List<ClassifierInput> inputs) {
        ensureOpen();
        ensureCalibrated();
        int k = labels.size();
        float[][] out = new float[inputs.size()][];
        // Similar lengths together: less padding (padding never changes a row: it is masked).
        Integer[] order = new Integer[inputs.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt(i -> inputs.get(i).length()));
        for (int start = 0; start < order.length; start += SCORE_BATCH) {
            List<ClassifierInput> batch = new ArrayList<>();
            for (int j = start; j < Math.min(start + SCORE_BATCH, order.length); j++) {
                batch.add(inputs.get(order[j]));
            }
            Collated c = collate(batch);
            float[] flat = head.scores(nativePrompt(), c.ids, c.mask, c.tokenTypes, c.slots, c.batch, c.length);
            for (int b = 0; b < batch.size(); b++) {
                out[order[start + b]] = Arrays.copyOfRange(flat, b * k, (b + 1) * k);
            }
        }
        return out;
    }

    /**
     * The label and the class probabilities (softmax of the scores) of one text.
     *
     * @param textB the second text of a pair task, or null
     */
    public Prediction classify(String text, String textB) {
        return prediction(scores(List.of(encode(text, textB)))[0]);
    }

    /**
     * The label and class probabilities of each input, scored in batches ({@link #scores}): what
     * {@link #classify(String, String)} gives each alone, up to rounding.
     */
    public List<Prediction> classify(List<ClassifierInput> inputs) {
        return Arrays.stream(scores(inputs)).map(this::prediction).toList();
    }

    /** {@link #classify(String, String)} of a single text. */
    public Prediction classify(String text) {
        return classify(text, null);
    }

    /**
     * Accuracy, macro-F1, per-class scores and the confusion matrix on {@code data}, and the mean
     * cross-entropy of the class scores.
     *
     * @throws io.ptune.DatasetException when a label of the data is not one of this classifier's
     */
    public Evaluation evaluate(ClassificationDataset data) {
        ensureOpen();
        int[] gold = goldIndices(data);
        float[][] scores = scores(encode(data));
        int[] predicted = new int[scores.length];
        double loss = 0;
        for (int i = 0; i < scores.length; i++) {
            double[] p = softmax(scores[i]);
            predicted[i] = argmax(p);
            loss -= Math.log(Math.max(p[gold[i]], Double.MIN_NORMAL));
        }
        return new Evaluation(ClassificationMetrics.of(labels, gold, predicted), loss / scores.length);
    }

    int[] goldIndices(ClassificationDataset data) {
        int[] gold = new int[data.size()];
        for (int i = 0; i < gold.length; i++) {
            ClassificationExample example = data.examples().get(i);
            gold[i] = labels.indexOf(example.label());
            if (gold[i] < 0) {
                throw new io.ptune.DatasetException(data.source() + ":" + example.line() + ": label '"
                        + example.label() + "' is not one of the classifier's labels " + labels);
            }
        }
        return gold;
    }

    /** The label and probabilities of one text. */
    public record Prediction(String label, Map<String, Double> probabilities) {
        public Prediction {
            probabilities = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(probabilities));
        }
    }

    /** Metrics on a labelled data set and the mean cross-entropy of the class scores. */
    public record Evaluation(ClassificationMetrics metrics, double loss) {}

    private Prediction prediction(float[] scores) {
        double[] p = softmax(scores);
        Map<String, Double> probabilities = new LinkedHashMap<>();
        for (int c = 0; c < p.length; c++) {
            probabilities.put(labels.get(c), p[c]);
        }
        return new Prediction(labels.get(argmax(p)), probabilities);
    }

    static double[] softmax(float[] scores) {
        double max = Double.NEGATIVE_INFINITY;
        for (float s : scores) {
            max = Math.max(max, s);
        }
        double[] p = new double[scores.length];
        double sum = 0;
        for (int c = 0; c < p.length; c++) {
            p[c] = Math.exp(scores[c] - max);
            sum += p[c];
        }
        for (int c = 0; c < p.length; c++) {
            p[c] /= sum;
        }
        return p;
    }

    static int argmax(double[] values) {
        int best = 0;
        for (int c = 1; c < values.length; c++) {
            if (values[c] > values[best]) {
                best = c;
            }
        }
        return best;
    }

    /** The verbalizer's contextual calibration, computed when first needed after a change. */
    private synchronized void ensureCalibrated() {
        if (!config.calibrate() || calibrated) {
            return;
        }
        List<ClassifierInput> inputs = new ArrayList<>();
        for (String text : CONTENT_FREE) {
            inputs.add(encoder.encode(text, config.template().hasTextB() ? "" : null));
        }
        Collated c = collate(inputs);
        head.calibrate(nativePrompt(), c.ids, c.mask, c.slots, c.batch, c.length);
        calibrated = true;
    }

    /** Training changes the content-free scores: calibration is dropped and redone when next needed. */
    synchronized void dropCalibration() {
        if (config.calibrate()) {
            head.clearCalibration();
            calibrated = false;
        }
    }

    /** A right-padded batch. */
    record Collated(long[] ids, long[] mask, long[] tokenTypes, long[] slots, int batch, int length) {}

    Collated collate(List<ClassifierInput> inputs) {
        int b = inputs.size();
        int t = inputs.stream().mapToInt(ClassifierInput::length).max().orElse(0);
        long pad = model.padTokenId();
        long[] ids = new long[b * t];
        long[] mask = new long[b * t];
        boolean types = inputs.get(0).tokenTypesView() != null;
        long[] tokenTypes = types ? new long[b * t] : null;
        long[] slots = config.head() == ClassificationHead.LINEAR ? null : new long[b];
        Arrays.fill(ids, pad);
        for (int i = 0; i < b; i++) {
            ClassifierInput in = inputs.get(i);
            System.arraycopy(in.idsView(), 0, ids, i * t, in.length());
            Arrays.fill(mask, i * t, i * t + in.length(), 1L);
            if (types) {
                System.arraycopy(in.tokenTypesView(), 0, tokenTypes, i * t, in.length());
            }
            if (slots != null) {
                slots[i] = in.slot();
            }
        }
        return new Collated(ids, mask, tokenTypes, slots, b, t);
    }

    /** The model it classifies with (borrowed). */
    public Model model() {
        return model;
    }

    /** The prompt in front of the model, or null for the head alone. */
    public PromptModule prompt() {
        return prompt;
    }

    public ClassificationConfig config() {
        return config;
    }

    /** The pooling the linear head uses (the model's default resolved). */
    public Pooling pooling() {
        return pooling(model, config);
    }

    /** The classes, in index order. */
    public List<String> labels() {
        return labels;
    }

    /** The longest input in tokens. */
    public int maxLength() {
        return maxLength;
    }

    /** The head's parameter names ("classifier.weight", "score.weight", "soft_verbalizer.weight"). */
    public List<String> headParameterNames() {
        ensureOpen();
        return head.parameterNames();
    }

    public long[] headShape(String name) {
        ensureOpen();
        return head.shape(name);
    }

    public float[] readHead(String name) {
        ensureOpen();
        return head.read(name);
    }

    public void writeHead(String name, float[] values) {
        ensureOpen();
        head.write(name, values);
    }

    /** Trainable parameters: the prompt's and the head's. */
    public long trainableParameterCount() {
        ensureOpen();
        long count = prompt == null ? 0 : prompt.trainableParameterCount();
        for (String name : head.parameterNames()) {
            count += head.numel(name);
        }
        return count;
    }

    NativeClassifier nativeHead() {
        return head;
    }

    NativePrompt nativePrompt() {
        return prompt == null ? null : prompt.nativePrompt();
    }

    /** Frees the head and the prompt after the calls in flight have returned; idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            try {
                head.close();
            } finally {
                if (prompt != null) {
                    prompt.close();
                }
            }
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("classifier (" + config.head().cliName() + ", labels " + labels
                    + ") is closed; load or create it again");
        }
    }

    private static long[] toArray(List<Long> values) {
        return values.stream().mapToLong(Long::longValue).toArray();
    }

    @Override
    public String toString() {
        return "PromptClassifier[" + config.head().cliName() + ", labels " + labels + ", prompt "
                + (prompt == null ? "none" : prompt.method().cliName()) + "]";
    }
}
