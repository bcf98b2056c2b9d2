package io.ptune.classify;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A classifier on disk: the prompt adapter (PEFT's files) plus the task's files.
 *
 * <ul>
 *   <li>Linear head with a prompt: PEFT's SEQ_CLS adapter. {@code task_type} is {@code SEQ_CLS} and
 *       the head is in {@code adapter_model.safetensors} beside {@code prompt_embeddings}, under the
 *       names PEFT's {@code modules_to_save} wrapper saves: {@code base_model.classifier.weight} and
 *       {@code .bias} (BERT) or {@code base_model.score.weight} (decoders). {@code modules_to_save}
 *       is not written: PEFT adds {@code classifier} / {@code score} for SEQ_CLS by itself, and PEFT
 *       before 0.14 rejects the key. PEFT loads it into {@code *ForSequenceClassification} built
 *       with {@code num_labels} = K (and {@code pad_token_id} for decoders); it reproduces ptune's
 *       logits with pooling cls (encoders) or last (decoders, unpadded inputs).
 *   <li>Verbalizer heads with a prompt: the prompt adapter of the model's own task type; a soft
 *       verbalizer's class vectors in {@value PromptAdapter#SOFT_VERBALIZER_FILE}.
 *   <li>No prompt (a linear probe, a zero-shot verbalizer): no adapter_config.json; a linear head in
 *       {@value PromptAdapter#HEAD_FILE} (same tensor names).
 *   <li>Always {@value PromptAdapter#CLASSIFIER_FILE}: {@code {"format": "ptune-classifier",
 *       "version": 1, "labels": [...], "head", "pooling", "template", "verbalizer": {label: [words]},
 *       "multi_token", "calibrate", "max_length", "seed"}}.
 * </ul>
 */
public final class ClassifierFiles {
    static final String FORMAT = "ptune-classifier";
    /** PEFT saves prompt-learning modules_to_save under the transformers model's own path. */
    static final String PEFT_PREFIX = "base_model.";

    private ClassifierFiles() {}

    static void save(PromptClassifier classifier, Path dir, String baseModelNameOrPath) {
        ClassificationConfig config = classifier.config();
        Map<String, FloatTensor> head = new LinkedHashMap<>();
        for (String name : classifier.headParameterNames()) {
            head.put(name, new FloatTensor(classifier.headShape(name), classifier.readHead(name)));
        }
        Map<String, byte[]> files = new LinkedHashMap<>();
        files.put(PromptAdapter.CLASSIFIER_FILE, classifierJson(classifier));
        Map<String, FloatTensor> weights = new LinkedHashMap<>();
        String taskType = null;
        if (config.head() == ClassificationHead.LINEAR) {
            Map<String, FloatTensor> peftNamed = new LinkedHashMap<>();
            head.forEach((name, tensor) -> peftNamed.put(PEFT_PREFIX + name, tensor));
            if (classifier.prompt() != null) {
                weights.putAll(peftNamed);
                taskType = PromptAdapter.SEQ_CLS;
            } else {
                files.put(PromptAdapter.HEAD_FILE, safetensors(peftNamed));
            }
        } else if (config.head() == ClassificationHead.SOFT_VERBALIZER) {
            files.put(PromptAdapter.SOFT_VERBALIZER_FILE, safetensors(head));
        }
        PromptAdapter.Extras extras = new PromptAdapter.Extras(taskType, weights, files);
        PromptModule prompt = classifier.prompt();
        if (prompt != null) {
            PromptAdapter.save(prompt, dir, baseModelNameOrPath, extras);
        } else {
            PromptAdapter.saveWithoutPrompt(dir, extras);
        }
    }

    private static byte[] classifierJson(PromptClassifier classifier) {
        ClassificationConfig config = classifier.config();
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("format", FORMAT);
        json.put("version", 1);
        ArrayNode labels = json.putArray("labels");
        classifier.labels().forEach(labels::add);
        json.put("head", config.head().cliName());
        json.put("pooling", config.head() == ClassificationHead.LINEAR ? classifier.pooling().cliName() : null);
        json.put("template", config.template() == null ? null : config.template().text());
        if (config.verbalizer() != null) {
            ObjectNode words = json.putObject("verbalizer");
            config.verbalizer().words().forEach((label, list) -> {
                ArrayNode array = words.putArray(label);
                list.forEach(array::add);
            });
        } else {
            json.putNull("verbalizer");
        }
        json.put("multi_token", config.multiToken().cliName());
        json.put("calibrate", config.calibrate());
        json.put("max_length", classifier.maxLength());
        json.put("seed", config.seed());
        try {
            return JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(json);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] safetensors(Map<String, FloatTensor> tensors) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            Safetensors.write(out, tensors, Map.of("format", "pt"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static PromptClassifier load(Model model, Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new AdapterException("classifier directory " + dir + " does not exist; pass the --out folder of"
                    + " `ptune train --task classify`");
        }
        Path classifierFile = dir.resolve(PromptAdapter.CLASSIFIER_FILE);
        Path adapterConfig = dir.resolve(PromptAdapter.CONFIG_FILE);
        boolean hasPrompt = Files.isRegularFile(adapterConfig);
        Saved saved;
        if (Files.isRegularFile(classifierFile)) {
            saved = readClassifierJson(classifierFile);
        } else if (hasPrompt && PromptAdapter.SEQ_CLS.equals(
                JsonFiles.readObject(adapterConfig, AdapterException::new, "").path("task_type").asText())) {
            saved = peftSeqCls(model, dir);
        } else {
            throw new AdapterException(dir + " is no classifier: it has neither " + PromptAdapter.CLASSIFIER_FILE
                    + " nor a SEQ_CLS adapter_config.json; train one with `ptune train --task classify`");
        }
        PromptModule prompt = hasPrompt ? PromptAdapter.load(dir, model) : null;
        PromptClassifier classifier;
        try {
            classifier = new PromptClassifier(model, prompt, saved.config, saved.labels, saved.maxLength);
        } catch (InvalidConfigException e) {
            throw new AdapterException(classifierFile + ": " + e.getMessage(), e);
        }
        try {
            loadHead(classifier, dir, hasPrompt);
            return classifier;
        } catch (RuntimeException e) {
            classifier.close();
            throw e;
        }
    }

    private record Saved(ClassificationConfig config, List<String> labels, int maxLength) {}

    private static Saved readClassifierJson(Path file) {
        JsonNode json = JsonFiles.readObject(file, AdapterException::new, "");
        if (!FORMAT.equals(json.path("format").asText())) {
            throw new AdapterException(file + ": field 'format' must be \"" + FORMAT + "\"");
        }
        if (json.path("version").asInt(-1) != 1) {
            throw new AdapterException(file + ": version " + json.path("version") + " is not supported (ptune reads 1)");
        }
        List<String> labels = new ArrayList<>();
        for (JsonNode label : json.path("labels")) {
            labels.add(label.asText());
        }
        try {
            ClassificationConfig.Builder builder = ClassificationConfig.builder()
                    .head(ClassificationHead.parse(json.path("head").asText()))
                    .multiToken(MultiTokenRule.parse(json.path("multi_token").asText("first")))
                    .calibrate(json.path("calibrate").asBoolean(false))
                    .seed(json.path("seed").asLong(42));
            if (json.path("pooling").isTextual()) {
                builder.pooling(Pooling.parse(json.path("pooling").asText()));
            }
            if (json.path("template").isTextual()) {
                builder.template(json.path("template").asText());
            }
            if (json.path("verbalizer").isObject()) {
                Map<String, List<String>> words = new LinkedHashMap<>();
                for (Map.Entry<String, JsonNode> entry : json.path("verbalizer").properties()) {
                    List<String> list = new ArrayList<>();
                    entry.getValue().forEach(word -> list.add(word.asText()));
                    words.put(entry.getKey(), list);
                }
                builder.verbalizer(new Verbalizer(words));
            }
            int maxLength = json.path("max_length").asInt(-1);
            if (maxLength <= 1) {
                throw new AdapterException(file + ": field 'max_length' must be a whole number > 1");
            }
            return new Saved(builder.build(), labels, maxLength);
        } catch (InvalidConfigException e) {
            throw new AdapterException(file + ": " + e.getMessage(), e);
        }
    }

    /** A SEQ_CLS adapter from Python PEFT: a linear head whose rows give the number of labels. */
    private static Saved peftSeqCls(Model model, Path dir) {
        String name = PEFT_PREFIX + (model.architecture().causal() ? "score.weight" : "classifier.weight");
        long[] shape = PromptAdapter.taskTensorShape(dir, PromptAdapter.WEIGHTS_FILE, name);
        if (shape == null || shape.length != 2) {
            throw new AdapterException(dir.resolve(PromptAdapter.WEIGHTS_FILE) + " has no 2-D tensor '" + name
                    + "', the classification head PEFT saves for SEQ_CLS on a " + model.architecture().modelType());
        }
        List<String> labels = new ArrayList<>();
        for (int c = 0; c < shape[0]; c++) {
            labels.add("LABEL_" + c);
        }
        return new Saved(ClassificationConfig.builder().build(), labels, 512);
    }

    private static void loadHead(PromptClassifier classifier, Path dir, boolean hasPrompt) {
        ClassificationHead head = classifier.config().head();
        if (head == ClassificationHead.VERBALIZER) {
            return;
        }
        String file = head == ClassificationHead.SOFT_VERBALIZER ? PromptAdapter.SOFT_VERBALIZER_FILE
                : hasPrompt ? PromptAdapter.WEIGHTS_FILE : PromptAdapter.HEAD_FILE;
        String prefix = head == ClassificationHead.LINEAR ? PEFT_PREFIX : "";
        for (String name : classifier.headParameterNames()) {
            float[] values = PromptAdapter.readTaskTensor(dir, file, prefix + name, classifier.headShape(name),
                    classifier.labels().size() + " labels and the model's hidden size give that shape");
            classifier.writeHead(name, values);
        }
    }
}
