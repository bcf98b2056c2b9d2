package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.classify.ClassificationConfig;
import io.ptune.classify.PromptClassifier;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ptune classify}: the label and class probabilities of one text, as one JSON line
 * {@code {"label": "positive", "probabilities": {"negative": 0.08, "positive": 0.92}}}.
 */
@Command(name = "classify", mixinStandardHelpOptions = true,
        description = "Classify one text with a classifier (--adapter) or a zero-shot PET verbalizer; prints"
                + " {\"label\", \"probabilities\"} as JSON.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class ClassifyCommand extends ClassifierCommand {
    @Option(names = {"--text", "--prompt"}, required = true, paramLabel = "TEXT", description = "The text to classify.")
    String text;

    @Option(names = "--text-b", paramLabel = "TEXT", description = "The second text of a pair task.")
    String textB;

    @Option(names = "--json", description = "JSON output (the default and only format; accepted for symmetry with eval).")
    boolean json;

    @Override
    protected int run() throws Exception {
        ClassificationConfig zeroShot = zeroShotConfig();
        if (classifier.textField != null || classifier.textBField != null || classifier.labelField != null) {
            throw new IllegalArgumentException("--text-field, --text-b-field and --label-field name fields of a data"
                    + " file; classify takes the text itself (--text, --text-b)");
        }
        try (Model lm = model.load(); PromptClassifier c = open(lm, zeroShot)) {
            PromptClassifier.Prediction prediction = c.classify(text, textB);
            ObjectNode root = JsonFiles.MAPPER.createObjectNode();
            root.put("label", prediction.label());
            ObjectNode probabilities = root.putObject("probabilities");
            prediction.probabilities().forEach(probabilities::put);
            out().println(root.toString());
            out().flush();
        }
        return 0;
    }
}
