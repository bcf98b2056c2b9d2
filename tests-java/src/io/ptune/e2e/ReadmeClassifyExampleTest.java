package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.classify.ClassLoss;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.ClassificationTrainer;
import io.ptune.classify.Pooling;
import io.ptune.classify.PromptClassifier;
import io.ptune.data.ClassificationDataset;
import io.ptune.model.Model;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.train.TrainingConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's classification example, verbatim apart from paths and the data's size. */
class ReadmeClassifyExampleTest {
    @TempDir
    Path dir;

    @Test
    void readmeClassificationExampleRuns() throws Exception {
        Path trainFile = dir.resolve("train.tsv");
        Files.write(trainFile, Files.readAllLines(TestPaths.shared().resolve("data/sst2/train.tsv")).subList(0, 61));
        Path out = dir.resolve("my-classifier");
        List<Double> accuracies = new ArrayList<>();
        Map<String, Double> probabilities;

        ClassificationDataset data = ClassificationDataset.load(trainFile);
        List<ClassificationDataset> split = data.stratifiedSplit(0.1, 0);       // {train, dev}
        try (Model model = Model.load(TestPaths.onnxModel("all-minilm-l6-v2"));
                PromptClassifier classifier = PromptClassifier.create(model,
                        PrefixTuningConfig.builder().numVirtualTokens(16).build(),           // or null: the head alone
                        ClassificationConfig.builder().pooling(Pooling.MEAN).build(),       // linear head
                        data.labels(), 128);
                ClassificationTrainer trainer = new ClassificationTrainer(classifier,
                        TrainingConfig.builder().epochs(2).batchSize(32).build(), ClassLoss.focal(2, null),
                        split.get(0), split.get(1))) {
            trainer.addEpochListener(e -> accuracies.add(e.dev().metrics().accuracy()));
            trainer.train();
            classifier.save(out);
            probabilities = classifier.classify("a gripping film").probabilities();
        }
        assertEquals(2, accuracies.size());
        assertEquals(List.of("0", "1"), List.copyOf(probabilities.keySet()));
        assertTrue(Files.isRegularFile(out.resolve("adapter_config.json")));
    }
}
