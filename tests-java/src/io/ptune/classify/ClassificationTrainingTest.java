package io.ptune.classify;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.data.ClassificationDataset;
import io.ptune.model.Model;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.train.TrainingConfig;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Short trainings on real data: P-tuning v2 (prefix) + linear head on the frozen all-MiniLM-L6-v2
 * encoder on a slice of SST-2 lowers the dev loss and raises the dev accuracy; a soft prompt trained
 * through a PET verbalizer with the focal loss lowers its training loss on a tiny BERT MLM.
 */
class ClassificationTrainingTest {
    @Test
    void prefixAndHeadLearnSst2OnMiniLm() throws Exception {
        ClassificationDataset all = ClassificationDataset.load(TestPaths.shared().resolve("data/sst2/train.tsv"));
        ClassificationDataset train = all.head(320);
        ClassificationDataset dev = ClassificationDataset.load(TestPaths.shared().resolve("data/sst2/dev.tsv"),
                ClassificationDataset.Fields.DEFAULT, all.labels()).head(160);
        TrainingConfig training = TrainingConfig.builder().epochs(2).batchSize(16).learningRate(1e-2).seed(1).build();
        try (Model model = Model.load(TestPaths.onnxModel("all-minilm-l6-v2"));
                PromptClassifier classifier = PromptClassifier.create(model,
                        PrefixTuningConfig.builder().numVirtualTokens(8).seed(1).build(),
                        ClassificationConfig.builder().pooling(Pooling.MEAN).build(), all.labels(), 48);
                ClassificationTrainer trainer = new ClassificationTrainer(classifier, training, ClassLoss.CROSS_ENTROPY,
                        train, dev)) {
            PromptClassifier.Evaluation before = classifier.evaluate(dev);
            List<EpochMetrics> epochs = new ArrayList<>();
            trainer.addEpochListener(epochs::add);
            ClassificationSummary summary = trainer.train();
            PromptClassifier.Evaluation after = classifier.evaluate(dev);
            System.out.printf("SST-2 slice, MiniLM + prefix: dev loss %.4f -> %.4f, accuracy %.4f -> %.4f%n",
                    before.loss(), after.loss(), before.metrics().accuracy(), after.metrics().accuracy());
            assertEquals(2, epochs.size());
            assertEquals(summary.epochs(), epochs);
            assertEquals(after.loss(), epochs.get(1).dev().loss(), 1e-12, "the last epoch's dev metrics are the final ones");
            // An untrained head guesses (~0.5 on balanced SST-2, loss ~0.69); the frozen encoder knows sentiment.
            assertTrue(after.loss() < before.loss() - 0.1, "dev loss " + before.loss() + " -> " + after.loss());
            assertTrue(after.metrics().accuracy() > before.metrics().accuracy() + 0.1,
                    "dev accuracy " + before.metrics().accuracy() + " -> " + after.metrics().accuracy());
            assertTrue(after.metrics().accuracy() > 0.7, "dev accuracy " + after.metrics().accuracy());
        }
    }

    @Test
    void twoStageUnfreezesTopLayersAndSavesThem(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        ClassificationDataset data = tinyData();
        TrainingConfig training = TrainingConfig.builder().maxSteps(3).batchSize(4).learningRate(1e-2)
                .twoStage(io.ptune.train.TwoStageConfig.builder().layers(1).steps(2).build()).build();
        try (Model model = Model.load(ClassifierRoundTripTest.family("bert"))) {
            float[][] trained;
            List<ClassifierInput> inputs = new ArrayList<>();
            try (PromptClassifier classifier = PromptClassifier.create(model,
                        PrefixTuningConfig.builder().numVirtualTokens(2).seed(3).build(),
                        ClassificationConfig.builder().build(), data.labels(), 32);
                    ClassificationTrainer trainer = new ClassificationTrainer(classifier, training,
                            ClassLoss.crossEntropy(0.1, null), data, null)) {
                long stage1 = classifier.trainableParameterCount();
                ClassificationSummary summary = trainer.train();
                assertEquals(5, summary.steps());
                assertEquals(1, classifier.prompt().unfrozenLayers());
                assertTrue(classifier.trainableParameterCount() > stage1, "the top layer trains in stage 2");
                data.examples().forEach(e -> inputs.add(classifier.encode(e.text(), null)));
                trained = classifier.scores(inputs);
                classifier.save(dir);
            }
            assertTrue(java.nio.file.Files.exists(dir.resolve(io.ptune.adapter.PromptAdapter.LAYERS_FILE)));
            try (PromptClassifier loaded = PromptClassifier.load(model, dir)) {
                float[][] reloaded = loaded.scores(inputs);
                for (int i = 0; i < trained.length; i++) {
                    org.junit.jupiter.api.Assertions.assertArrayEquals(trained[i], reloaded[i], "row " + i);
                }
            }
        }
    }

    private static ClassificationDataset tinyData() {
        return new ClassificationDataset(java.nio.file.Path.of("inline"), List.of(
                new io.ptune.data.ClassificationExample("a fun film", null, "pos", 2),
                new io.ptune.data.ClassificationExample("it is too long and dull", null, "neg", 3),
                new io.ptune.data.ClassificationExample("great and fun", null, "pos", 4),
                new io.ptune.data.ClassificationExample("dull and bad", null, "neg", 5)), List.of("neg", "pos"));
    }

    @Test
    void softPromptTrainsThroughAVerbalizerWithFocalLoss() {
        ClassificationDataset data = tinyData();
        TrainingConfig training = TrainingConfig.builder().epochs(20).batchSize(4).learningRate(5e-2).build();
        try (Model model = Model.load(ClassifierRoundTripTest.family("bert"));
                PromptClassifier classifier = PromptClassifier.create(model,
                        PromptTuningConfig.builder().numVirtualTokens(4).seed(2).build(),
                        ClassificationConfig.builder().head(ClassificationHead.VERBALIZER)
                                .verbalizer("neg=bad;pos=the,and").build(), data.labels(), 32);
                ClassificationTrainer trainer = new ClassificationTrainer(classifier, training,
                        ClassLoss.focal(2, List.of(0.25, 0.75)), data, data)) {
            ClassificationSummary summary = trainer.train();
            assertEquals(20, summary.steps());
            assertTrue(summary.lastLoss() < 0.5 * summary.firstLoss(),
                    "focal loss " + summary.firstLoss() + " -> " + summary.lastLoss());
            assertEquals(1.0, summary.epochs().get(19).dev().metrics().accuracy(), "four examples learnt");
        }
    }
}
