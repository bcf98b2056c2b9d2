package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.TestMethods;
import io.ptune.Stories260kTest;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.data.AlpacaDataset;
import io.ptune.prompt.PromptModule;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two-stage training: prompt first, then the top layers too; only those layers change. */
class TwoStageTrainingTest extends Stories260kTest {
    private static final long[] IDS = {1, 403, 407, 261, 378};
    private static AlpacaDataset data;

    @TempDir
    Path dir;

    @BeforeAll
    static void loadData() {
        data = AlpacaDataset.load(TestPaths.alpacaEn()).head(16);
    }


    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    @Test
    void stageTwoTrainsOnlyTheTopLayersAndTheirFileRoundTrips() throws Exception {
        Path weights = TestPaths.stories260k().resolve("model.safetensors");
        String checksum = sha256(weights);
        float[][] bare = model.logits(null, IDS);
        TrainingConfig config = TrainingConfig.builder().maxSteps(4).batchSize(8).maxLength(64).learningRate(0.03)
                .twoStage(TwoStageConfig.builder().layers(2).learningRate(1e-3).steps(3).build()).build();
        List<StepMetrics> steps = new ArrayList<>();
        Path out = dir.resolve("adapter");
        float[][] trainedLogits;
        try (Trainer trainer = Trainer.create(model, TestMethods.get("p-tuning-mlp"), config, data)) {
            assertEquals(7, trainer.totalSteps());
            assertEquals(4, trainer.stage1Steps());
            trainer.addListener(steps::add);
            PromptModule prompt = trainer.prompt();
            List<String> methodParameters = prompt.parameterNames();
            assertTrue(prompt.layerParameterNames().isEmpty(), "stage 1 trains only the prompt");
            trainer.train();

            assertEquals(2, prompt.unfrozenLayers());
            List<String> layers = prompt.layerParameterNames();
            assertEquals(18, layers.size(), "9 weights per layer, 2 layers");
            for (String name : layers) {
                assertTrue(name.startsWith("model.layers.3.") || name.startsWith("model.layers.4."), name);
                FloatTensor base = Safetensors.open(weights).readFloat(name);
                assertArrayEquals(base.shape(), prompt.shape(name), name);
                assertFalse(Arrays.equals(base.data(), prompt.read(name)), name + " was trained");
                assertTrue(prompt.isTrainable(name));
            }
            assertEquals(methodParameters, prompt.methodParameterNames());
            trainedLogits = model.logits(prompt, IDS);
            PromptAdapter.save(prompt, out);
        }
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L), steps.stream().map(StepMetrics::step).toList());
        // A double formula: a few ulps of 0.03.
        assertEquals(0.03, steps.get(4).learningRate(), 1e-12, "stage 2 restarts its own schedule at the prompt rate");
        // The same computation on the same machine: bit-identical.
        assertTrue(Arrays.deepEquals(bare, model.logits(null, IDS)), "the base model is untouched");
        assertEquals(checksum, sha256(weights), "the base model file is untouched");

        Safetensors.SafetensorsFile layerFile = Safetensors.open(out.resolve(PromptAdapter.LAYERS_FILE));
        Set<String> names = new TreeSet<>(layerFile.tensors().keySet());
        assertEquals(18, names.size());
        assertTrue(names.stream().allMatch(n -> n.startsWith("model.layers.3.") || n.startsWith("model.layers.4.")));
        assertEquals("2", layerFile.metadata().get("ptune_unfrozen_layers"));

        try (PromptModule loaded = PromptAdapter.load(out, model)) {
            assertEquals(2, loaded.unfrozenLayers());
            assertEquals(0, loaded.trainableParameterCount(), "frozen again for inference");
            // The same values, shapes and machine: bit-identical.
            assertTrue(Arrays.deepEquals(trainedLogits, model.logits(loaded, IDS)), "identical logits");
        }
        try (PromptModule resumed = PromptAdapter.loadForTraining(out, model)) {
            assertTrue(resumed.isTrainable("model.layers.4.mlp.up_proj.weight"));
            assertEquals(1e-3, resumed.layerLearningRate(), 0);
        }
        // Without the layer file the prompt alone gives other logits: the layers matter.
        Files.delete(out.resolve(PromptAdapter.LAYERS_FILE));
        try (PromptModule promptOnly = PromptAdapter.load(out, model)) {
            assertTrue(Tolerances.maxDiff(trainedLogits, model.logits(promptOnly, IDS))
                    > 100 * Tolerances.fp32(Tolerances.maxAbs(trainedLogits)), "far more than rounding");
        }
    }

    @Test
    void layerFilesOfAnotherModelAndBadSettingsAreRejected() throws Exception {
        Path out = dir.resolve("wrong-layers");
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get("prompt-tuning"))) {
            prompt.unfreezeTopLayers(1, 1e-5);
            PromptAdapter.save(prompt, out);
            assertThrows(IllegalStateException.class, () -> prompt.unfreezeTopLayers(1, 1e-5));
        }
        Path file = out.resolve(PromptAdapter.LAYERS_FILE);
        Safetensors.SafetensorsFile original = Safetensors.open(file);
        Map<String, FloatTensor> renamed = new LinkedHashMap<>();
        for (String name : original.tensors().keySet()) {
            renamed.put(name.replace("model.layers.4.", "model.layers.2."), original.readFloat(name));
        }
        Safetensors.write(file, renamed, Map.of());
        AdapterException e = assertThrows(AdapterException.class, () -> PromptAdapter.load(out, model));
        assertTrue(e.getMessage().contains("[2]") && e.getMessage().contains("top"), e.getMessage());

        TrainingConfig tooMany = TrainingConfig.builder().maxSteps(1).twoStage(TwoStageConfig.builder().layers(6)
                .steps(1).build()).build();
        InvalidConfigException layers = assertThrows(InvalidConfigException.class,
                () -> Trainer.create(model, TestMethods.get("prefix"), tooMany, data).close());
        assertEquals("stage2Layers", layers.field());
        assertTrue(layers.getMessage().contains("only 5 layers"), layers.getMessage());
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get("prefix"))) {
            assertEquals("stage2Layers", assertThrows(InvalidConfigException.class,
                    () -> prompt.unfreezeTopLayers(0, 1e-5)).field());
        }
    }

    @Test
    void aStageTwoAdapterResumesLikeOneRun() {
        // Stateless AdamW (beta1 = beta2 = 0), a constant schedule and one example: the adapter is
        // the whole state: resuming reaches the same parameters (up to the last bit, see PromptMethodsTest).
        TrainingConfig.Builder stateless = TrainingConfig.builder().batchSize(1).maxLength(64).learningRate(0.01)
                .beta1(0).beta2(0).epsilon(1e-3).schedule(LrSchedule.CONSTANT);
        AlpacaDataset batch = data.head(1);
        Map<String, float[]> straight;
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get("prompt-tuning"))) {
            prompt.unfreezeTopLayers(1, 1e-3);
            try (Trainer trainer = new Trainer(model, prompt, stateless.maxSteps(4).build(), batch)) {
                trainer.train();
            }
            straight = prompt.readAll(prompt.parameterNames());
        }
        Path out = dir.resolve("half");
        try (PromptModule prompt = PromptModule.create(model, TestMethods.get("prompt-tuning"))) {
            prompt.unfreezeTopLayers(1, 1e-3);
            try (Trainer trainer = new Trainer(model, prompt, stateless.maxSteps(2).build(), batch)) {
                trainer.train();
            }
            PromptAdapter.save(prompt, out);
        }
        try (PromptModule resumed = PromptAdapter.loadForTraining(out, model);
                Trainer trainer = new Trainer(model, resumed, stateless.maxSteps(2).build(), batch)) {
            trainer.train();
            assertEquals(straight.keySet(), new java.util.LinkedHashSet<>(resumed.parameterNames()));
            for (Map.Entry<String, float[]> p : straight.entrySet()) {
                // Last-bit rounding of AdamW's lerp (see PromptMethodsTest) against moves of ~lr.
                assertArrayEquals(p.getValue(), resumed.read(p.getKey()), 1e-5f, p.getKey());
            }
        }
    }
}
