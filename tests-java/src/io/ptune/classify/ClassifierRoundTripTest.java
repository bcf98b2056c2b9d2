package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptTuningConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every head saved and loaded back gives the same scores (same process, same shapes: bit for bit),
 * in the files PEFT expects: SEQ_CLS with the head beside prompt_embeddings for the linear head, the
 * model's own task type for the verbalizers, no adapter_config.json without a prompt.
 */
class ClassifierRoundTripTest {
    private static final List<String> LABELS = List.of("neg", "neu", "pos");
    private static final List<String> TEXTS = List.of("a fun film", "it is too long and dull", "no comment");

    @TempDir
    Path dir;

    static Path family(String name) {
        return TestPaths.root().resolve("tests-java/resources/families").resolve(name).resolve("model");
    }

    @Test
    void linearHeadWithPromptIsPeftSeqCls() throws Exception {
        try (Model bert = Model.load(family("bert"))) {
            Path out = roundTrip(bert, PromptTuningConfig.builder().numVirtualTokens(3).seed(3).build(),
                    ClassificationConfig.builder().build());
            JsonNode config = JsonFiles.MAPPER.readTree(out.resolve("adapter_config.json").toFile());
            assertEquals("SEQ_CLS", config.get("task_type").asText());
            assertFalse(config.has("modules_to_save"), "PEFT < 0.14 rejects modules_to_save; PEFT adds it itself");
            assertEquals(Set.of("prompt_embeddings", "base_model.classifier.weight", "base_model.classifier.bias"),
                    Safetensors.open(out.resolve("adapter_model.safetensors")).tensors().keySet());
            JsonNode saved = JsonFiles.MAPPER.readTree(out.resolve(PromptAdapter.CLASSIFIER_FILE).toFile());
            assertEquals("cls", saved.get("pooling").asText());
            assertEquals(LABELS.size(), saved.get("labels").size());
        }
        try (Model gpt2 = Model.load(family("gpt2"))) {
            Path out = roundTrip(gpt2, PrefixTuningConfig.builder().numVirtualTokens(2).seed(4).build(),
                    ClassificationConfig.builder().build());
            assertEquals(Set.of("prompt_embeddings", "base_model.score.weight"),
                    Safetensors.open(out.resolve("adapter_model.safetensors")).tensors().keySet());
            assertEquals("last", JsonFiles.MAPPER.readTree(out.resolve(PromptAdapter.CLASSIFIER_FILE).toFile())
                    .get("pooling").asText());
        }
    }

    @Test
    void headsWithoutPromptAndVerbalizers() throws Exception {
        try (Model bert = Model.load(family("bert"))) {
            Path probe = roundTrip(bert, null, ClassificationConfig.builder().pooling(Pooling.MEAN).build());
            assertFalse(Files.exists(probe.resolve("adapter_config.json")));
            assertEquals(Set.of("base_model.classifier.weight", "base_model.classifier.bias"),
                    Safetensors.open(probe.resolve(PromptAdapter.HEAD_FILE)).tensors().keySet());
            Path verbalizer = roundTrip(bert, PTuningConfig.builder().numVirtualTokens(3).seed(5).build(),
                    ClassificationConfig.builder().head(ClassificationHead.VERBALIZER)
                            .verbalizer("neg=bad;neu=it,yes;pos=the,and").multiToken(MultiTokenRule.MEAN)
                            .calibrate(true).build());
            assertEquals("FEATURE_EXTRACTION", JsonFiles.MAPPER.readTree(
                    verbalizer.resolve("adapter_config.json").toFile()).get("task_type").asText());
            // A later save of another kind into the same folder leaves none of the earlier files.
            try (PromptClassifier c = PromptClassifier.load(bert, probe)) {
                c.save(verbalizer);
            }
            assertFalse(Files.exists(verbalizer.resolve("adapter_config.json")));
            assertFalse(Files.exists(verbalizer.resolve("adapter_model.safetensors")));
        }
        try (Model gpt2 = Model.load(family("gpt2"))) {
            Path soft = roundTrip(gpt2, null, ClassificationConfig.builder().head(ClassificationHead.SOFT_VERBALIZER)
                    .template("Review: {text} Sentiment:{mask}").build());
            assertEquals(Set.of("soft_verbalizer.weight"),
                    Safetensors.open(soft.resolve(PromptAdapter.SOFT_VERBALIZER_FILE)).tensors().keySet());
        }
    }

    @Test
    void loadingChecksTheFolderAndTheModel() throws Exception {
        try (Model bert = Model.load(family("bert")); Model gpt2 = Model.load(family("gpt2"))) {
            AdapterException none = assertThrows(AdapterException.class, () -> PromptClassifier.load(bert, dir));
            assertTrue(none.getMessage().contains("is no classifier"), none.getMessage());
            Path out = roundTrip(bert, null, ClassificationConfig.builder().pooling(Pooling.MEAN).build());
            AdapterException other = assertThrows(AdapterException.class, () -> PromptClassifier.load(gpt2, out));
            assertTrue(other.getMessage().contains(PromptAdapter.HEAD_FILE), other.getMessage());
            // A causal LM cannot pool its first position; an encoder without [MASK] cannot fill a template.
            assertEquals("pooling", assertThrows(InvalidConfigException.class, () -> PromptClassifier.create(gpt2, null,
                    ClassificationConfig.builder().pooling(Pooling.CLS).build(), LABELS, 32)).field());
            assertEquals("labels", assertThrows(InvalidConfigException.class, () -> PromptClassifier.create(bert, null,
                    ClassificationConfig.builder().build(), List.of("pos"), 32)).field());
        }
    }

    /** Creates, perturbs the head, scores, saves, reloads and scores again; returns the folder. */
    private Path roundTrip(Model model, PromptMethodConfig prompt, ClassificationConfig config) {
        Path out = dir.resolve("c" + Math.abs(new Random().nextLong()));
        float[][] before;
        try (PromptClassifier classifier = PromptClassifier.create(model, prompt, config, LABELS, 32)) {
            Random random = new Random(7);
            for (String name : classifier.headParameterNames()) {
                float[] values = classifier.readHead(name);
                for (int i = 0; i < values.length; i++) {
                    values[i] += (float) (0.1 * random.nextGaussian());
                }
                classifier.writeHead(name, values);
            }
            before = classifier.scores(inputs(classifier));
            classifier.save(out);
        }
        try (PromptClassifier loaded = PromptClassifier.load(model, out)) {
            assertEquals(LABELS, loaded.labels());
            assertEquals(config.head(), loaded.config().head());
            float[][] after = loaded.scores(inputs(loaded));
            for (int i = 0; i < before.length; i++) {
                assertArrayEquals(before[i], after[i], "scores of input " + i + " after reload");
            }
            PromptClassifier.Prediction p = loaded.classify(TEXTS.get(0));
            assertEquals(1.0, p.probabilities().values().stream().mapToDouble(Double::doubleValue).sum(), 1e-12);
            assertEquals(LABELS, new ArrayList<>(p.probabilities().keySet()));
        }
        return out;
    }

    private static List<ClassifierInput> inputs(PromptClassifier classifier) {
        List<ClassifierInput> inputs = new ArrayList<>();
        TEXTS.forEach(t -> inputs.add(classifier.encode(t, null)));
        return inputs;
    }
}
