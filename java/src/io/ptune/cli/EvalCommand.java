package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.PromptClassifier;
import io.ptune.data.ClassificationDataset;
import io.ptune.data.ClassificationMetrics;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.report.ConfusionMatrixPlot;
import java.nio.file.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ptune eval}: accuracy, macro-F1, per-class precision / recall / F1 / support and the
 * confusion matrix of a classifier on a labelled file.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Evaluate a classifier (--adapter) or a zero-shot PET verbalizer on labelled data: accuracy,"
                + " macro-F1, per-class scores, confusion matrix.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class EvalCommand extends ClassifierCommand {
    @Option(names = "--data", required = true, paramLabel = "FILE",
            description = "Labelled data: CSV / TSV with a header, JSON Lines or a JSON array.")
    Path data;

    @Option(names = "--json",
            description = "Print {\"accuracy\", \"macro_f1\", \"labels\", \"per_class\": {label: {precision, recall,"
                    + " f1, support}}, \"confusion\"} instead of a table.")
    boolean json;

    @Option(names = "--confusion-png", paramLabel = "FILE", description = "Also draw the confusion matrix as a PNG.")
    Path confusionPng;

    @Override
    protected int run() throws Exception {
        ClassificationConfig zeroShot = zeroShotConfig();
        if (classifier.pooling != null && zeroShot != null) {
            throw new IllegalArgumentException("--pooling is the linear head's; a zero-shot verbalizer reads {mask}");
        }
        try (Model lm = model.load(); PromptClassifier c = open(lm, zeroShot)) {
            ClassificationDataset dataset = classifier.load(data, c.labels());
            PromptClassifier.Evaluation evaluation = c.evaluate(dataset);
            ClassificationMetrics metrics = evaluation.metrics();
            if (confusionPng != null) {
                String title = ConfusionMatrixPlot.title("Confusion matrix: " + data.getFileName(), metrics.confusion());
                ConfusionMatrixPlot.write(confusionPng, title, metrics.labels(), metrics.confusion());
            }
            if (json) {
                out().println(toJson(metrics).toString());
            } else {
                out().print(metrics.table());
            }
            out().flush();
        }
        return 0;
    }

    static ObjectNode toJson(ClassificationMetrics metrics) {
        ObjectNode root = JsonFiles.MAPPER.createObjectNode();
        root.put("accuracy", metrics.accuracy());
        root.put("macro_f1", metrics.macroF1());
        ArrayNode labels = root.putArray("labels");
        metrics.labels().forEach(labels::add);
        ObjectNode perClass = root.putObject("per_class");
        for (ClassificationMetrics.PerClass c : metrics.perClass()) {
            ObjectNode node = perClass.putObject(c.label());
            node.put("precision", c.precision());
            node.put("recall", c.recall());
            node.put("f1", c.f1());
            node.put("support", c.support());
        }
        ArrayNode confusion = root.putArray("confusion");
        for (long[] row : metrics.confusion()) {
            ArrayNode r = confusion.addArray();
            for (long v : row) {
                r.add(v);
            }
        }
        return root;
    }
}
