"""The widget's handling of Slicer objects, with Slicer stood in (issue 14 items 5, 6, 8, 10, 11).

The GUI needs a running Slicer; these tests import ``RobustDeep.py`` with stand-ins and drive the
widget's methods against recording fakes: the embedded Segment Editor on exit (as Slicer's Segment
Editor module leaves it: no active effect, no shortcuts, no view observations), the BRAINSFit CLI node
removed after its own event (a fake ``qt.QTimer.singleShot``) and its transform applied to the volume
the run started with, the head-mask selector's node types, the module's dependencies.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

from test_slicer_module import MODULE_DIR, MODULE_FILE, UI_FILE, module_tree, run_module_with_stubs

EDITOR = """
    import types
    log = []

    class Editor:
        def __getattr__(self, name):
            return lambda *args: log.append([name, [a if a is None or isinstance(a, str) else "node" for a in args]])

    widget = mod.RobustDeepWidget.__new__(mod.RobustDeepWidget)
    widget.ui = types.SimpleNamespace(maskSegmentEditorWidget=Editor())
    widget.logic = types.SimpleNamespace(segmentEditorNode=lambda: object())
    widget._parameterNode = None
    widget.initializeParameterNode = lambda: None
    widget.setParameterNode = lambda node: None
    widget.parent = types.SimpleNamespace(isEntered=True)
"""


def test_leaving_the_module_turns_the_segment_editor_effect_off(tmp_path):
    out = run_module_with_stubs(MODULE_DIR, EDITOR + """
    widget.enter(); entered = list(log); log.clear()
    widget.exit(); exited = list(log); log.clear()
    widget.onSceneStartClose(None, None); closed = list(log)
    print(json.dumps({"entered": entered, "exited": exited, "closed": closed}))
    """, cwd=tmp_path)
    exited = [name for name, _ in out["exited"]]
    assert ["setActiveEffect", [None]] in out["exited"]  # a live Paint effect is turned off
    assert "uninstallKeyboardShortcuts" in exited and "removeViewObservations" in exited
    entered = [name for name, _ in out["entered"]]
    assert "installKeyboardShortcuts" in entered and "setMRMLSegmentEditorNode" in entered
    assert ["setSegmentationNode", [None]] in out["closed"] and ["setActiveEffect", [None]] in out["closed"]


BRAINSFIT = """
    import types
    removed, deferred, applied, shown = [], [], [], []
    sys.modules["qt"].QTimer = types.SimpleNamespace(singleShot=lambda ms, f: deferred.append(f))
    scene = types.SimpleNamespace(RemoveNode=lambda node: removed.append(node.name))
    mod.slicer.mrmlScene = scene

    class Node:
        def __init__(self, name, patient=None):
            self.name, self.patient = name, patient
        def GetAttribute(self, key):
            return self.patient
        def GetScene(self):
            return scene
        def IsBusy(self):
            return False
        def GetStatusString(self):
            return "Completed"
        StatusModifiedEvent = 1

    started, other, transform, template = Node("P1 FD", "P1"), Node("P2 FD", "P2"), Node("tfm"), Node("tpl")
    widget = mod.RobustDeepWidget.__new__(mod.RobustDeepWidget)
    widget.ui = types.SimpleNamespace(registerPatientButton=types.SimpleNamespace(text=""))
    widget.logic = types.SimpleNamespace(
        applyTransformToFamily=lambda t, fam: applied.append([t.name, sorted(n.name for n in fam.values())]),
        showOverTemplate=lambda fixed, moving: shown.append([fixed.name, moving.name]))
    widget._patientNodes = {"FD": started, "CT": Node("P1 CT", "P1")}
    widget._parameterNode = types.SimpleNamespace(movingVolume=other, templateVolume=template)
    widget._brainsFitInputs = (template, started, transform)
    widget._brainsFitNode = cli = Node("cli")
    widget.removeObserver = lambda *a: None
    widget._updateButtons = lambda *a: None
    widget._onBRAINSFitStatus(cli, None)
    during = list(removed)
    for f in deferred:
        f()
    print(json.dumps({"during": during, "after": removed, "deferred": len(deferred),
                      "applied": applied, "shown": shown}))
"""


def test_brainsfit_node_is_removed_after_its_event_and_the_run_s_own_volume_moves(tmp_path):
    out = run_module_with_stubs(MODULE_DIR, BRAINSFIT, cwd=tmp_path)
    assert out["during"] == []  # not inside its own StatusModified event
    assert out["deferred"] == 1 and out["after"] == ["cli"]
    # The selection changed to P2 while BRAINSFit ran: the transform still goes to P1's family.
    assert out["applied"] == [["tfm", ["P1 CT", "P1 FD"]]]
    assert out["shown"] == [["tpl", "P1 FD"]]


def _node_types(annotation: str) -> set:
    return set(re.findall(r"vtkMRML\w+", annotation))


def test_node_selectors_keep_the_node_types_of_the_ui():
    """Slicer's GUI connector sets a selector's nodeTypes from the parameter's annotation (a node class
    or a Union of them), replacing the .ui's list: every type the .ui lists must be in the annotation."""
    annotations = {}
    for node in ast.walk(module_tree()):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotations[node.target.id] = ast.unparse(node.annotation)
    root = ET.parse(UI_FILE).getroot()
    checked = 0
    for widget in root.iter("widget"):
        props = {p.get("name"): p for p in widget.findall("property")}
        if widget.get("class") != "qMRMLNodeComboBox" or "SlicerParameterName" not in props:
            continue
        parameter = props["SlicerParameterName"].find("string").text
        ui_types = {s.text for s in props["nodeTypes"].iter("string")} if "nodeTypes" in props else set()
        child_types_shown = "showChildNodeTypes" not in props or props["showChildNodeTypes"].find("bool").text == "true"
        declared = _node_types(annotations[parameter])
        if not child_types_shown:
            assert ui_types <= declared, f"{parameter}: the selector would lose {sorted(ui_types - declared)}"
        checked += 1
    assert checked >= 5
    assert "vtkMRMLLabelMapVolumeNode" in _node_types(annotations["headMask"])


def test_the_module_declares_the_slicer_modules_it_uses(tmp_path):
    out = run_module_with_stubs(MODULE_DIR, """
    mod.ScriptedLoadableModule.__init__ = lambda self, parent: setattr(self, "parent", parent)
    import types
    module = mod.RobustDeep(types.SimpleNamespace())
    print(json.dumps({"dependencies": module.parent.dependencies}))
    """, cwd=tmp_path)
    declared = {d.lower() for d in out["dependencies"]}
    used = set()
    for path in [MODULE_FILE, *sorted((MODULE_DIR / "RobustDeepLib").glob("*.py"))]:
        used |= set(re.findall(r"slicer\.modules\.(\w+)", path.read_text(encoding="utf-8")))
    used.discard("RobustDeepWidget")  # this module itself
    assert used and used <= declared, f"used but not declared: {sorted(used - declared)}"
    assert "segmentations" in declared  # the embedded Segment Editor and the segment export
